package logs

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// TestRealSegfault crashes a real program inside libpcre2
// (pcre2_jit_match with a NULL code pointer, like the lab's FFI scenario),
// reads the kernel's segfault line with dmesg, and checks that the logs
// alone name the function, the fault, the time, and the core file it left.
func TestRealSegfault(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to read the kernel log")
	}
	for _, tool := range []string{"gcc", "dmesg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if _, err := os.Stat("/usr/include/pcre2.h"); err != nil {
		t.Skip("libpcre2-dev not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "pcrenull.c")
	os.WriteFile(src, []byte(`#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
int main(void) { return pcre2_jit_match(NULL, (PCRE2_SPTR)"x", 1, 0, 0, NULL, NULL); }
`), 0o644)
	bin := filepath.Join(dir, "pcrenull")
	if out, err := exec.Command("gcc", "-O0", "-o", bin, src, "-lpcre2-8").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	// The core is looked for only when kernel.core_pattern writes it into
	// the program's directory (a relative name): a core this test made must
	// not land in the host's crash directory or systemd-coredump's store.
	pat, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	limit := "0"
	if p := strings.TrimSpace(string(pat)); p != "" && !strings.ContainsAny(p, "/|") {
		limit = "unlimited"
	} else {
		t.Logf("kernel.core_pattern %q does not write into the program's directory: the core link is not checked", p)
	}
	start := time.Now()
	cmd := exec.Command("sh", "-c", "ulimit -c "+limit+"; exec "+bin)
	cmd.Dir = dir
	err := cmd.Run()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGSEGV {
		t.Fatalf("program did not die of SIGSEGV: %v", err)
	}
	pid := cmd.Process.Pid
	var kernel []byte
	for i := 0; i < 20 && kernel == nil; i++ {
		out, err := exec.Command("dmesg").Output()
		if err != nil {
			t.Skipf("dmesg: %v", err)
		}
		for _, l := range bytes.Split(out, []byte{'\n'}) {
			if bytes.Contains(l, []byte("["+strconv.Itoa(pid)+"]: segfault")) {
				kernel = append(l, '\n')
			}
		}
		if kernel == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if kernel == nil {
		t.Skip("the kernel did not log the segfault (rate limited, or debug.exception-trace=0)")
	}
	klog := filepath.Join(dir, "dmesg.txt")
	os.WriteFile(klog, kernel, 0o644)
	sym := NewObjectSymbolizer()
	defer sym.Close()
	res, err := Analyze(context.Background(), Options{Inputs: []Input{{Path: klog}}, Symbolizer: sym, Cores: discoverCores(dir)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Incidents) != 1 {
		t.Fatalf("%d incidents from %q", len(res.Incidents), kernel)
	}
	inc := res.Incidents[0]
	if inc.PID != pid || inc.Signal != 11 || !strings.HasPrefix(inc.Site, "libpcre2-8.so") || !strings.Contains(inc.Site, "!pcre2_jit_match_8+0x") {
		t.Errorf("incident: pid %d signal %d site %q (line %q)", inc.PID, inc.Signal, inc.Site, kernel)
	}
	f := inc.Fault
	ef, err := elf.Open(f.LibraryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if id := buildID(ef); id == "" || id != f.BuildID {
		t.Errorf("build-id %q, library has %q", f.BuildID, id)
	}
	if !strings.Contains(f.Explanation, "NULL pointer") {
		t.Errorf("explanation: %s", f.Explanation)
	}
	if d := inc.Time.Sub(start); d < -2*time.Minute || d > 2*time.Minute {
		t.Errorf("incident time %s, program ran at %s (boot time %s from %s)", inc.Time, start, res.BootTime, res.BootFrom)
	}
	// The core, when kernel.core_pattern wrote one next to the program.
	ms, _ := filepath.Glob(filepath.Join(dir, "core*"))
	if len(ms) == 1 && inc.Core != ms[0] {
		t.Errorf("core %q not matched (incident core %q)", ms[0], inc.Core)
	}
	// gdb, as the oracle, names the faulting instruction from the core.
	if _, err := exec.LookPath("gdb"); err == nil && len(ms) == 1 {
		out, err := exec.Command("gdb", "-batch", "-ex", "x/i $pc", bin, ms[0]).CombinedOutput()
		if err == nil {
			if i := bytes.Index(out, []byte("<")); i >= 0 {
				if j := bytes.IndexByte(out[i:], '>'); j > 0 {
					name, off, _ := strings.Cut(string(out[i+1:i+j]), "+")
					n, _ := strconv.ParseUint(off, 10, 64)
					if want := name + "+" + hex(n); !strings.HasSuffix(inc.Site, "!"+want) {
						t.Errorf("site %q, gdb says %s", inc.Site, want)
					}
				}
			}
		}
	}
	t.Logf("%s; core %q (%s)", inc.Site, inc.Core, inc.CoreConfidence)
}

// discoverCores lists the cores in dir as `coroner logs --cores DIR` does.
func discoverCores(dir string) []*coredumps.Entry {
	entries, _ := coredumps.Discover(coredumps.DiscoverOptions{Sources: []string{coredumps.SourceDir}, Dirs: []string{dir}, NoJournal: true, Quick: true})
	return entries
}
