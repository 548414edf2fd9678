package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// eventKeys lists events as comparable strings (not where they were read).
func eventKeys(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s %d %s %s", e.Time.UTC().Format(time.RFC3339Nano), e.Kind, e.PID, e.SignalName, e.Text))
	}
	sort.Strings(out)
	return out
}

// TestContainerLogs reads the logs of a container running nginx and
// PHP-FPM as Docker's json-file driver and Kubernetes' CRI write them: the
// events are those of the same lines in plain log files.
func TestContainerLogs(t *testing.T) {
	fpm, nginx := "testdata/host/php8.2-fpm.log", "testdata/host/nginx/error.log"
	dir := t.TempDir()
	// One container running both (its log mixes nginx's and FPM's lines:
	// compared with the same lines in one plain file), one running FPM
	// only (compared with FPM's own log).
	both := filepath.Join(dir, "both.log")
	var all []byte
	for _, p := range []string{nginx, fpm} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(both, all, 0o644); err != nil {
		t.Fatal(err)
	}
	for plain, format := range map[string]Format{both: FormatMixed, fpm: FormatAuto} {
		want, _, err := ReadInput(Input{Path: plain, Format: format}, time.UTC, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) < 5 {
			t.Fatalf("%s gives only %d events", plain, len(want))
		}
		b, err := os.ReadFile(plain)
		if err != nil {
			t.Fatal(err)
		}
		docker, cri := wrapDockerCRI(strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"))
		for name, content := range map[string][]byte{"0123abcd-json.log": docker, "0.log": cri} {
			p := filepath.Join(dir, filepath.Base(plain)+"-"+name)
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
			evs, st, err := ReadInput(Input{Path: p, Format: FormatAuto}, time.UTC, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Container {
				t.Errorf("%s: not recognised as a container's log", name)
			}
			if got, want := eventKeys(evs), eventKeys(want); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s of %s: events\n%s\nwant (plain log)\n%s", name, plain, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
}

// wrapDockerCRI writes lines as Docker's json-file driver and Kubernetes'
// CRI log would, long lines split in two entries (Docker beyond 16 KiB,
// CRI's partial lines).
func wrapDockerCRI(lines []string) (docker, cri []byte) {
	var d, c bytes.Buffer
	for i, l := range lines {
		ts := time.Date(2027, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339Nano)
		stream := []string{"stdout", "stderr"}[i%2]
		parts := []string{l + "\n"}
		if len(l) > 40 {
			parts = []string{l[:40], l[40:] + "\n"}
		}
		for _, p := range parts {
			b, _ := json.Marshal(map[string]string{"log": p, "stream": stream, "time": ts})
			d.Write(append(b, '\n'))
			tag := "F"
			if !strings.HasSuffix(p, "\n") {
				tag = "P"
			}
			fmt.Fprintf(&c, "%s %s %s %s\n", ts, stream, tag, strings.TrimSuffix(p, "\n"))
		}
	}
	return d.Bytes(), c.Bytes()
}

func TestUnwrapLine(t *testing.T) {
	for in, want := range map[string]string{
		`{"log":"[01-Jan-2027 00:00:03] WARNING: [pool www] child 7 exited on signal 11 (SIGSEGV)\n","stream":"stderr","time":"2027-01-01T00:00:03Z"}`: "[01-Jan-2027 00:00:03] WARNING: [pool www] child 7 exited on signal 11 (SIGSEGV)\n",
		"2027-01-01T00:00:03.123456789Z stderr F [01-Jan-2027 00:00:03] WARNING: x":                                                                    "[01-Jan-2027 00:00:03] WARNING: x",
	} {
		got, ok := unwrapLine([]byte(in))
		if !ok || string(got) != want {
			t.Errorf("unwrapLine(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"[01-Jan-2027 00:00:03] WARNING: x", "2027/01/01 00:00:30 [error] 881#881: x", `{"MESSAGE":"x"}`} {
		if got, ok := unwrapLine([]byte(in)); ok {
			t.Errorf("unwrapLine(%q) = %q: not a container's line", in, got)
		}
	}
}

// FuzzUnwrap reads arbitrary bytes as a container's log: no panic, and
// every byte returned comes from the input's lines.
func FuzzUnwrap(f *testing.F) {
	f.Add([]byte("{\"log\":\"a\\n\"}\n2027-01-01T00:00:03Z stderr P b\n2027-01-01T00:00:03Z stderr F c\n"))
	f.Add([]byte("2027-01-01T00:00:03Z stdout F\n{\"log\":"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, w := range []containerWrap{wrapDocker, wrapCRI} {
			var out bytes.Buffer
			if _, err := out.ReadFrom(newUnwrapper(bytes.NewReader(b), w)); err != nil {
				t.Fatal(err)
			}
			if out.Len() > 2*len(b)+1 && w == wrapCRI {
				t.Errorf("%d bytes out of %d", out.Len(), len(b))
			}
		}
		unwrapLine(b)
		sniffWrap(b)
	})
}
