package coredumps

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/source/compressed"
)

const testBootID = "0123456789abcdef0123456789abcdef"

// compressWith runs a real compression tool (zstd, lz4, xz, gzip) on src.
func compressWith(t testing.TB, tool, src, dst string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is needed (apt-get install zstd lz4 xz-utils gzip): %v", tool, err)
	}
	args := map[string][]string{
		"zstd": {"-q", "-c", "-3"}, "lz4": {"-q", "-c"}, "xz": {"-c", "-1", "-T1"}, "gzip": {"-c", "-6"},
	}[tool]
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(tool, append(args, src)...)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v: %s", tool, src, err, stderr.String())
	}
}

// writeApportCrash writes a .crash report the way apport's problem_report
// does: sorted text fields (ProblemType first, multi-line values indented
// by one space), then "CoreDump: base64" whose lines are each one
// base64-encoded chunk. With zstdFile == "", the chunks form a gzip stream
// built like apport's: a gzip header naming the field, raw-deflate blocks as
// the compressor emits them for 128 KiB reads, and a trailer block ending
// with CRC-32 and size. Otherwise the chunks are 128 KiB slices of that
// zstd file (apport's CompressedFile).
func writeApportCrash(t testing.TB, path, core, zstdFile string, fields map[string]string) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("ProblemType: Crash\n")
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		v := fields[k]
		if strings.Contains(v, "\n") {
			b.WriteString(k + ":\n " + strings.ReplaceAll(v, "\n", "\n ") + "\n")
		} else {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("CoreDump: base64")
	emit := func(chunk []byte) {
		b.WriteString("\n ")
		b.WriteString(base64.StdEncoding.EncodeToString(chunk))
	}
	if zstdFile != "" {
		data, err := os.ReadFile(zstdFile)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += 131072 {
			emit(data[i:min(i+131072, len(data))])
		}
	} else {
		emit([]byte("\037\213\010\010\000\000\000\000\002\377CoreDump\000"))
		raw, err := os.ReadFile(core)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		fw, _ := flate.NewWriter(&out, 6)
		crc := crc32.ChecksumIEEE(nil)
		for i := 0; i < len(raw); i += 131072 {
			block := raw[i:min(i+131072, len(raw))]
			crc = crc32.Update(crc, crc32.IEEETable, block)
			fw.Write(block)
			if out.Len() > 0 {
				emit(bytes.Clone(out.Bytes()))
				out.Reset()
			}
		}
		fw.Close()
		last := append(bytes.Clone(out.Bytes()), binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, crc), uint32(len(raw)))...)
		emit(last)
	}
	b.WriteString("\n")
	if err := os.WriteFile(path, b.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// setXattrs sets systemd-coredump's user.coredump.* attributes.
func setXattrs(t testing.TB, path string, attrs map[string]string) {
	t.Helper()
	for k, v := range attrs {
		if err := syscall.Setxattr(path, "user.coredump."+k, []byte(v), 0); err != nil {
			t.Fatalf("setxattr %s on %s: %v", k, path, err)
		}
	}
}

// testStores builds every store format from one real core.
type testStores struct {
	rc                           *realCore
	systemd, crash, apport, abrt string
	dir                          string
	truncRaw                     string // the truncated core, uncompressed
	crashTime                    time.Time
}

func buildStores(t testing.TB) *testStores {
	t.Helper()
	rc := getRealCore(t)
	root := t.TempDir()
	s := &testStores{rc: rc, dir: filepath.Join(root, "dir"), systemd: filepath.Join(root, "systemd"),
		crash: filepath.Join(root, "crash"), apport: filepath.Join(root, "apport-core"), abrt: filepath.Join(root, "abrt")}
	for _, d := range []string{s.dir, s.systemd, s.crash, s.apport, s.abrt} {
		os.MkdirAll(d, 0o755)
	}
	base := time.Date(2026, 11, 26, 19, 27, 44, 0, time.Local)
	s.crashTime = base
	// systemd-coredump: one entry per compression, xattrs like systemd sets them.
	for i, tool := range []string{"zstd", "lz4", "xz"} {
		ts := base.Add(time.Duration(i) * time.Minute)
		ext := map[string]string{"zstd": ".zst", "lz4": ".lz4", "xz": ".xz"}[tool]
		name := fmt.Sprintf("core.crash.0.%s.%d.%d%s", testBootID, rc.PID, ts.UnixMicro(), ext)
		p := filepath.Join(s.systemd, name)
		compressWith(t, tool, rc.Core, p)
		setXattrs(t, p, map[string]string{"pid": strconv.Itoa(rc.PID), "uid": "0", "gid": "0", "signal": "11",
			"timestamp": strconv.FormatInt(ts.UnixMicro(), 10), "rlimit": "18446744073709551615",
			"hostname": "lab", "comm": "crash", "exe": rc.Exe})
	}
	// A systemd entry that is truncated (ProcessSizeMax cut it) and stored plain.
	raw, err := os.ReadFile(rc.Core)
	if err != nil {
		t.Fatal(err)
	}
	s.truncRaw = filepath.Join(root, "core.truncated")
	if err := os.WriteFile(s.truncRaw, raw[:len(raw)/2], 0o640); err != nil {
		t.Fatal(err)
	}
	truncStored := filepath.Join(s.systemd, fmt.Sprintf("core.crash.0.%s.%d.%d.zst", testBootID, rc.PID+1, base.Add(-time.Hour).UnixMicro()))
	compressWith(t, "zstd", s.truncRaw, truncStored)
	setXattrs(t, truncStored, map[string]string{"pid": strconv.Itoa(rc.PID + 1), "uid": "0", "gid": "0", "signal": "11",
		"timestamp": strconv.FormatInt(base.Add(-time.Hour).UnixMicro(), 10), "comm": "crash", "exe": rc.Exe})
	copyFile(s.truncRaw, filepath.Join(s.dir, "core.truncated"))
	// Apport: one gzip report, one zstd report, one core in the core dir.
	fields := map[string]string{
		"Date": base.Add(10 * time.Minute).Format(time.ANSIC), "ExecutablePath": rc.Exe, "Signal": "11",
		"ProcCmdline": "./crash", "ProcStatus": fmt.Sprintf("Name:\tcrash\nState:\tR (running)\nPid:\t%d\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0", rc.PID),
		"Package": "(not installed)", "Architecture": "amd64",
	}
	writeApportCrash(t, filepath.Join(s.crash, strings.ReplaceAll(rc.Exe, "/", "_")+".0.crash"), rc.Core, "", fields)
	zst := filepath.Join(root, "core.zst")
	compressWith(t, "zstd", rc.Core, zst)
	fields["Date"] = base.Add(11 * time.Minute).Format(time.ANSIC)
	writeApportCrash(t, filepath.Join(s.crash, "_opt_crash_zstd.0.crash"), rc.Core, zst, fields)
	apportCore := filepath.Join(s.apport, fmt.Sprintf("core.%s.0.%s.%d.12345", strings.NewReplacer("/", "_", ".", "_").Replace(rc.Exe), testBootID, rc.PID))
	if err := copyFile(rc.Core, apportCore); err != nil {
		t.Fatal(err)
	}
	// ABRT problem directory.
	pd := filepath.Join(s.abrt, fmt.Sprintf("ccpp-2026-11-26-19:47:44-%d", rc.PID))
	os.MkdirAll(pd, 0o750)
	for name, v := range map[string]string{"analyzer": "CCpp", "executable": rc.Exe, "pid": strconv.Itoa(rc.PID), "uid": "0",
		"time": strconv.FormatInt(base.Add(20*time.Minute).Unix(), 10), "cmdline": "./crash",
		"reason": fmt.Sprintf("Process %s was killed by signal 11 (SIGSEGV)", rc.Exe)} {
		os.WriteFile(filepath.Join(pd, name), []byte(v), 0o640)
	}
	compressWith(t, "lz4", rc.Core, filepath.Join(pd, "coredump.lz4"))
	// A user directory: a gzip'd core and a plain one.
	compressWith(t, "gzip", rc.Core, filepath.Join(s.dir, "core.1234.gz"))
	copyFile(rc.Core, filepath.Join(s.dir, "core"))
	os.WriteFile(filepath.Join(s.dir, "notes.txt.gz"), []byte("\x1f\x8bnot a core"), 0o644)
	return s
}

func (s *testStores) options() DiscoverOptions {
	return DiscoverOptions{Sources: []string{SourceSystemd, SourceApport, SourceABRT}, Dirs: []string{s.dir},
		SystemdDir: s.systemd, ApportCrashDir: s.crash, ApportCoreDir: s.apport, ABRTDirs: []string{s.abrt}, NoJournal: true}
}

func TestDiscoverAndResolveEveryStore(t *testing.T) {
	s := buildStores(t)
	rawSHA := fileSHA(t, s.rc.Core)
	wantID, _ := FileBuildID(s.rc.Exe)
	entries, warns := Discover(s.options())
	for _, w := range warns {
		t.Errorf("warning: %v", w)
	}
	// 3 systemd compressed + 1 truncated, 2 .crash, 1 apport core, 1 abrt,
	// 3 in dir (gzip, plain, truncated plain).
	if len(entries) != 11 {
		for _, e := range entries {
			t.Logf("%+v", *e)
		}
		t.Fatalf("got %d entries, want 11", len(entries))
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Time.After(entries[i-1].Time) {
			t.Errorf("not newest first: %v after %v", entries[i].Time, entries[i-1].Time)
		}
	}
	comps := map[string]int{}
	for _, e := range entries {
		comps[e.Source+"/"+e.Compression]++
		t.Run(e.Source+"/"+e.ID, func(t *testing.T) {
			truncated := e.PID == s.rc.PID+1 || e.ID == "core.truncated"
			if e.Exe != s.rc.Exe || e.Signal != 11 {
				t.Errorf("exe %q signal %d", e.Exe, e.Signal)
			}
			if !truncated && e.PID != s.rc.PID {
				t.Errorf("pid %d, want %d", e.PID, s.rc.PID)
			}
			if e.BuildID != wantID || e.FileBuildID != wantID {
				t.Errorf("build-ids %q / %q, want %q", e.BuildID, e.FileBuildID, wantID)
			}
			if truncated {
				wantTrunc := Yes // a plain core shorter than its program headers
				if e.Compression != "" {
					wantTrunc = Unknown // known only once decompressed
				}
				if e.Truncated != wantTrunc || e.Analysable != Yes {
					t.Errorf("truncated core: truncated %s analysable %s why %q", e.Truncated, e.Analysable, e.Why)
				}
			} else {
				if e.Analysable != Yes {
					t.Errorf("analysable %s: %s", e.Analysable, e.Why)
				}
				wantTrunc := No
				if e.Compression != "" {
					wantTrunc = Unknown
				}
				if e.Truncated != wantTrunc {
					t.Errorf("truncated %s (%s), want %s", e.Truncated, e.TruncatedWhy, wantTrunc)
				}
			}
			// Resolving by the entry's own identifier gives the raw core back.
			id := e.Path
			if e.Source == SourceABRT {
				id = e.Report
			}
			got, plain, cleanup, err := Resolve(id, ResolveOptions{Discover: s.options()})
			if err != nil {
				t.Fatalf("resolve %s: %v", id, err)
			}
			defer cleanup()
			if truncated {
				if got.Truncated != Yes || !strings.Contains(got.Why, "partial") || !strings.Contains(got.TruncatedWhy, "program headers need") {
					t.Errorf("resolved truncated core: truncated %s why %q / %q", got.Truncated, got.Why, got.TruncatedWhy)
				}
				if fileSHA(t, plain) != fileSHA(t, s.truncRaw) {
					t.Errorf("resolved truncated core differs from the truncated raw core")
				}
				return
			}
			if sha := fileSHA(t, plain); sha != rawSHA {
				t.Errorf("resolved core differs from the raw core")
			}
			if got.Truncated != No || got.Analysable != Yes || got.PID != s.rc.PID || got.CoreSize != int64(len(mustRead(t, s.rc.Core))) {
				t.Errorf("resolved entry: truncated %s analysable %s (%s) pid %d size %d", got.Truncated, got.Analysable, got.Why, got.PID, got.CoreSize)
			}
			if e.Compression != "" {
				cleanup()
				if _, err := os.Stat(plain); !os.IsNotExist(err) {
					t.Errorf("cleanup left %s", plain)
				}
			} else if plain != e.Path {
				t.Errorf("plain core %s resolved to a copy %s", e.Path, plain)
			}
		})
	}
	comps["systemd/zstd"]-- // the truncated one
	comps["dir/"]--         // the truncated one
	for _, k := range []string{"systemd/zstd", "systemd/lz4", "systemd/xz", "apport/gzip", "apport/zstd", "apport/", "abrt/lz4", "dir/gzip", "dir/"} {
		if comps[k] != 1 {
			t.Errorf("want one %s entry, got %d (%v)", k, comps[k], comps)
		}
	}
	// Quick mode: store metadata only for compressed cores and reports.
	qo := s.options()
	qo.Quick = true
	quick, _ := Discover(qo)
	if len(quick) != len(entries) {
		t.Fatalf("quick: %d entries, want %d", len(quick), len(entries))
	}
	for _, e := range quick {
		switch {
		case e.Compression == "" && e.Analysable != Yes:
			t.Errorf("quick, plain %s: analysable %s (%s)", e.ID, e.Analysable, e.Why)
		case e.Compression != "" && (e.Analysable != Unknown || !(strings.Contains(e.Why, "quick") || e.Why == "executable not known")):
			t.Errorf("quick, compressed %s: analysable %s (%s)", e.ID, e.Analysable, e.Why)
		case e.Source == SourceSystemd && (e.Exe != s.rc.Exe || e.Signal != 11 || e.Comm != "crash"):
			t.Errorf("quick, systemd %s: metadata from xattrs missing: %+v", e.ID, e)
		}
	}
	// Store entry names, --pid and --latest.
	e, plain, cleanup, err := Resolve(filepath.Base(entries[0].Path), ResolveOptions{Discover: s.options()})
	if err == nil {
		cleanup()
	}
	_ = plain
	if entries[0].Source == SourceSystemd || entries[0].Source == SourceApport {
		if err != nil || e.Path != entries[0].Path {
			t.Errorf("resolve by store name %s: %v", filepath.Base(entries[0].Path), err)
		}
	}
	sdName := ""
	for _, e := range entries {
		if e.Source == SourceSystemd && e.Compression == "xz" {
			sdName = strings.TrimSuffix(e.ID, ".xz")
		}
	}
	e, _, cleanup, err = Resolve(sdName, ResolveOptions{Discover: s.options()})
	if err != nil || e.Source != SourceSystemd || e.Compression != "xz" {
		t.Errorf("resolve systemd name without extension %s: %v %+v", sdName, err, e)
	} else {
		cleanup()
	}
	e, _, cleanup, err = Resolve("", ResolveOptions{Latest: true, Discover: s.options()})
	if err != nil || e.Path != entries[0].Path {
		t.Errorf("--latest: %v, got %+v want %s", err, e, entries[0].Path)
	} else {
		cleanup()
	}
	e, _, cleanup, err = Resolve("", ResolveOptions{PID: s.rc.PID + 1, Discover: s.options()})
	if err != nil || e.Truncated != Yes {
		t.Errorf("--pid of the truncated core: %v %+v", err, e)
	} else {
		cleanup()
	}
	if _, _, _, err := Resolve("", ResolveOptions{PID: 1, Discover: s.options()}); err == nil || !strings.Contains(err.Error(), "no core of pid 1") {
		t.Errorf("--pid 1: %v", err)
	}
	if _, _, _, err := Resolve("core.nothing", ResolveOptions{Discover: s.options()}); err == nil || !strings.Contains(err.Error(), "no such core") {
		t.Errorf("unknown name: %v", err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCorruptAndTruncatedStreams(t *testing.T) {
	rc := getRealCore(t)
	dir := t.TempDir()
	compressed.TempDir = dir
	defer func() { compressed.TempDir = "" }()
	for _, tool := range []string{"zstd", "lz4", "xz", "gzip"} {
		p := filepath.Join(dir, "c."+tool)
		compressWith(t, tool, rc.Core, p)
		b := mustRead(t, p)
		cut := filepath.Join(dir, "cut."+tool)
		os.WriteFile(cut, b[:len(b)/2], 0o644)
		bad := bytes.Clone(b)
		for i := len(bad) / 3; i < len(bad)/3+64 && i < len(bad); i++ {
			bad[i] ^= 0x5a
		}
		flipped := filepath.Join(dir, "bad."+tool)
		os.WriteFile(flipped, bad, 0o644)
		for _, p := range []string{cut, flipped} {
			_, _, _, err := Resolve(p, ResolveOptions{})
			var ce *compressed.CorruptError
			if !errors.As(err, &ce) {
				t.Errorf("%s: want a CorruptError, got %v", filepath.Base(p), err)
				continue
			}
			if !strings.Contains(err.Error(), p) || !(strings.Contains(err.Error(), "corrupt") || strings.Contains(err.Error(), "truncated")) {
				t.Errorf("%s: unclear error %q", filepath.Base(p), err)
			}
		}
	}
	// No temp file may be left behind by the failures.
	left, _ := filepath.Glob(filepath.Join(dir, "coroner-*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	// A .crash whose base64 is damaged.
	crash := filepath.Join(dir, "bad.crash")
	writeApportCrash(t, crash, rc.Core, "", map[string]string{"ExecutablePath": rc.Exe})
	b := mustRead(t, crash)
	i := bytes.Index(b, []byte("CoreDump: base64\n ")) + 200
	b[i] = '!'
	os.WriteFile(crash, b, 0o644)
	_, _, _, err := Resolve(crash, ResolveOptions{})
	if err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("damaged .crash: %v", err)
	}
}

// TestDiscoverCrashDirectories: a directory kept per crash (DIR/<crash>/core,
// as the crash lab and some deployment scripts keep them) is searched one
// level down; a compressed core's name gives its pid and dump time when
// quick discovery does not open it, and the core's own notes win over a
// name that lies.
func TestDiscoverCrashDirectories(t *testing.T) {
	rc := getRealCore(t)
	root := t.TempDir()
	for _, d := range []string{"a", "b", "c", "empty"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	copyFile(rc.Core, filepath.Join(root, "a", "core"))
	dumped := time.Date(2026, 11, 26, 19, 27, 44, 0, time.Local)
	compressWith(t, "zstd", rc.Core, filepath.Join(root, "b", fmt.Sprintf("core.crash.4242.%d.zst", dumped.Unix())))
	copyFile(rc.Core, filepath.Join(root, "c", "core.crash.77"))
	os.WriteFile(filepath.Join(root, "c", "notes.txt"), []byte("not a core"), 0o644)

	entries, warns := Discover(DiscoverOptions{Sources: []string{SourceDir}, Dirs: []string{root}, NoJournal: true, Quick: true})
	if len(warns) > 0 {
		t.Errorf("warnings: %v", warns)
	}
	byDir := map[string]*Entry{}
	for _, e := range entries {
		byDir[filepath.Base(filepath.Dir(e.Path))] = e
	}
	if len(entries) != 3 || byDir["a"] == nil || byDir["b"] == nil || byDir["c"] == nil {
		t.Fatalf("found %d entries: %v", len(entries), byDir)
	}
	if e := byDir["a"]; e.PID != rc.PID {
		t.Errorf("plain core: pid %d, want %d from its notes", e.PID, rc.PID)
	}
	if e := byDir["b"]; e.PID != 4242 || !e.Time.Equal(dumped) || e.Compression != "zstd" {
		t.Errorf("compressed core: pid %d time %s compression %q, want 4242 %s from its name", e.PID, e.Time, e.Compression, dumped)
	}
	if e := byDir["c"]; e.PID != rc.PID {
		t.Errorf("core named with pid 77: pid %d, want %d from its notes", e.PID, rc.PID)
	}
}

// TestDiscoverTimeWindow lists real cores of three crash times and keeps
// those of --since/--until, reporting each inspection to Progress.
func TestDiscoverTimeWindow(t *testing.T) {
	rc := getRealCore(t)
	root := t.TempDir()
	times := map[string]time.Time{
		"old": time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		"mid": time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC),
		"new": time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
	}
	for name, when := range times {
		p := filepath.Join(root, "core."+name)
		copyFile(rc.Core, p)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
	list := func(since, until time.Time) (names []string, calls []string) {
		o := DiscoverOptions{Sources: []string{SourceDir}, Dirs: []string{root}, NoJournal: true, Quick: true, Since: since, Until: until,
			Progress: func(done, total int, path string) {
				calls = append(calls, fmt.Sprintf("%d/%d %s", done, total, filepath.Base(path)))
			}}
		entries, warns := Discover(o)
		if len(warns) > 0 {
			t.Errorf("warnings: %v", warns)
		}
		for _, e := range entries {
			names = append(names, strings.TrimPrefix(filepath.Base(e.Path), "core."))
		}
		return names, calls
	}
	if got, calls := list(time.Time{}, time.Time{}); strings.Join(got, " ") != "new mid old" || len(calls) != 3 || !strings.HasPrefix(calls[2], "3/3 core.") {
		t.Errorf("no window: %v (progress %v), want new mid old and 3 calls ending 3/3", got, calls)
	}
	got, calls := list(times["mid"], times["new"])
	if strings.Join(got, " ") != "mid" {
		t.Errorf("since mid until new: %v, want mid (since inclusive, until exclusive)", got)
	}
	if strings.Join(calls, ",") != "1/1 core.mid" {
		t.Errorf("progress %v, want one call 1/1 core.mid (cores out of the window are not inspected)", calls)
	}
	if got, _ := list(times["new"].Add(time.Second), time.Time{}); len(got) != 0 {
		t.Errorf("since after the newest: %v, want none", got)
	}
}
