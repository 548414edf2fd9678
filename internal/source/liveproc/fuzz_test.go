package liveproc

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const mapsSample = `55d0c8a00000-55d0c8a4a000 r--p 00000000 08:01 1835033                    /usr/sbin/php-fpm8.2
55d0c8a4a000-55d0c8d2c000 r-xp 0004a000 08:01 1835033                    /usr/sbin/php-fpm8.2
7f3a40000000-7f3a48000000 rw-s 00000000 00:01 2048                       /dev/zero (deleted)
7f3a4c000000-7f3a4c200000 rw-p 00000000 00:00 0 
7f3a4d000000-7f3a4d001000 r--p 00000000 08:01 12 /srv/my site/a file.so (deleted)
7ffd1c5f3000-7ffd1c614000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`

func TestParseMaps(t *testing.T) {
	maps, bad := ParseMaps([]byte(mapsSample + "garbage line\n"))
	if bad != 1 || len(maps) != 7 {
		t.Fatalf("%d mappings, %d bad", len(maps), bad)
	}
	shm := maps[2]
	if !shm.Shared || shm.Path != "/dev/zero" || !shm.Deleted || shm.Inode != 2048 || !shm.Write || shm.Exec {
		t.Errorf("shared memory: %+v", shm)
	}
	if f := maps[4]; f.Path != "/srv/my site/a file.so" || !f.Deleted || f.Write {
		t.Errorf("path with spaces: %+v", f)
	}
	if anon := maps[3]; anon.Path != "" || anon.Inode != 0 || anon.Shared || anon.Dumped != anon.End-anon.Start {
		t.Errorf("anonymous: %+v", anon)
	}
	if v := maps[6]; v.Read || !v.Exec || v.Dumped != 0 {
		t.Errorf("vsyscall: %+v", v)
	}
}

func TestParseStat(t *testing.T) {
	st, err := ParseStat([]byte("4512 (php-fpm: pool (www)) S 4500 4500 4500 0 -1 4194560 3512 0 0 0 1234 56 0 0 20 0 1 0 98765 100000 2000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0"))
	if err != nil || st.State != 'S' || st.UserTicks != 1234 || st.SystemTicks != 56 || st.StartTicks != 98765 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := ParseStat([]byte("1 (x) S 1")); err == nil {
		t.Error("short stat line accepted")
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add([]byte(mapsSample))
	f.Add([]byte("0-1 r 0 0 0"))
	f.Add([]byte("ffffffffffffffff-0 rwxp ffffffff 00:00 99999999999999999999 x\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		maps, _ := ParseMaps(b)
		for i, m := range maps {
			if m.End < m.Start || (i > 0 && maps[i-1].Start > m.Start) {
				t.Fatalf("bad mapping %+v", m)
			}
		}
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4512 (php-fpm) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21"))
	f.Add([]byte("1 ()) R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStat(b)
		_ = parseStatus(b)
	})
}

// TestRefusalWords covers the refusals this machine cannot produce (it has
// no Yama): each says why in words.
func TestRefusalWords(t *testing.T) {
	www := &status{UID: 33}
	for _, c := range []struct {
		f    refusal
		want string
	}{
		{refusal{err: unix.EPERM, scope: 1, selfUID: 33, target: www, dumpable: true}, "ptrace_scope is 1: without CAP_SYS_PTRACE a process may trace only its own descendants"},
		{refusal{err: unix.EPERM, scope: 2, selfUID: 33, target: www, dumpable: true}, "ptrace_scope is 2: only a process with CAP_SYS_PTRACE"},
		{refusal{err: unix.EPERM, scope: 3, capPtrace: true, target: www}, "ptrace_scope is 3: no process may be traced, not even by root"},
		{refusal{err: unix.EPERM, scope: 1, capPtrace: true, target: www, dumpable: true}, "refused even with CAP_SYS_PTRACE"},
		{refusal{err: unix.EPERM, scope: 0, selfUID: 1000, target: www, dumpable: true}, "runs as uid 33 and coroner as uid 1000"},
		{refusal{err: unix.EPERM, scope: -1, selfUID: 33, target: www, dumpable: false}, "process.dumpable = yes"},
		{refusal{err: unix.ESRCH}, "does not exist"},
	} {
		if got := c.f.explain(); !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want %q in it", c.f, got, c.want)
		}
	}
}
