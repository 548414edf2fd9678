package labtest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cores of programs that tests crash themselves are dumped by gdb
// (generate-core-file) when the program stops on its fatal signal, not by
// the kernel: kernel.core_pattern is machine-wide (it may pipe cores to
// systemd-coredump or Apport, or point at a directory the test cannot
// read), only the lab may change it, and RLIMIT_CORE may be capped. gdb's
// core holds the same threads, registers, NT_SIGINFO, NT_FILE and memory;
// coredump_filter 0x37 makes it include the text of mapped files as the
// kernel's include their first pages, so nothing is read from the files.

// gdbCoreFilter is written to /proc/self/coredump_filter before gdb runs
// (inherited by the program): anonymous and file-backed private and shared
// memory, ELF headers.
const gdbCoreFilter = "0x37"

// gdbPath returns gdb or skips the test with the reason.
func gdbPath(t testing.TB) string {
	t.Helper()
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb is not installed: tests dump the cores of the programs they crash with gdb, independently of kernel.core_pattern (apt-get install gdb, or make deps)")
	}
	return gdb
}

var gdbPIDRE = regexp.MustCompile(`process (\d+)`)

// CrashCore runs argv in dir (with env added to the test's environment)
// under gdb until it stops on a fatal signal, and returns the core gdb
// wrote there (dir/core) and the pid of the crashed process. It works
// without root and whatever kernel.core_pattern and RLIMIT_CORE are. The
// test fails when the program does not crash, and skips when gdb is
// missing or may not trace it (ptrace forbidden in the container).
func CrashCore(t testing.TB, dir string, env []string, argv ...string) (core string, pid int) {
	t.Helper()
	gdb := gdbPath(t)
	core = filepath.Join(dir, "core")
	args := []string{"-c", `echo ` + gdbCoreFilter + ` > /proc/self/coredump_filter && exec "$@"`, "sh", gdb,
		"-nx", "-batch", "-iex", "set debuginfod enabled off", "-iex", "set auto-load no",
		"-ex", "set disable-randomization off", "-ex", "set startup-with-shell off",
		"-ex", "run", "-ex", "generate-core-file " + core, "-ex", "kill", "--args"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append(args, argv...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if st, serr := os.Stat(core); serr == nil && st.Size() > 0 {
		if err := kernelLayout(core); err != nil {
			t.Fatalf("core of %s: %v", argv[0], err)
		}
		if m := gdbPIDRE.FindSubmatch(out); m != nil {
			pid, _ = strconv.Atoi(string(m[1]))
		}
		if pid == 0 {
			t.Fatalf("gdb dumped %s but did not say the pid:\n%s", core, out)
		}
		return core, pid
	}
	if bytes.Contains(out, []byte("ptrace")) && (bytes.Contains(out, []byte("Operation not permitted")) || bytes.Contains(out, []byte("not permitted"))) {
		t.Skipf("gdb may not trace the program here (ptrace not permitted): no core to analyse\n%s", tail(string(out), 10))
	}
	t.Fatalf("%s did not stop on a fatal signal under gdb (gdb: %v):\n%s", argv[0], err, tail(string(out), 30))
	return "", 0
}

// AttachCore attaches gdb to the running process pid and returns once the
// process runs on under it; wait, called after the test made the process
// crash, waits for gdb to dump its core (core) when it stops on the fatal
// signal and to kill it. Needs the right to trace pid (root, or the same
// user with kernel.yama.ptrace_scope 0); it skips otherwise.
func AttachCore(t testing.TB, pid int, core string) (wait func()) {
	t.Helper()
	gdb := gdbPath(t)
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/coredump_filter", pid), []byte(gdbCoreFilter), 0); err != nil {
		t.Logf("coredump_filter of %d: %v (text of mapped files will be read from the files)", pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, gdb, "-nx", "-batch", "-iex", "set debuginfod enabled off", "-iex", "set auto-load no",
		"-p", strconv.Itoa(pid), "-ex", "continue", "-ex", "generate-core-file "+core, "-ex", "kill")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start gdb: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Running under gdb: traced, and not in a tracing stop any more.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			cancel()
			if strings.Contains(out.String(), "ptrace") {
				t.Skipf("gdb may not attach to %d here (ptrace not permitted): %v\n%s", pid, err, tail(out.String(), 10))
			}
			t.Fatalf("gdb -p %d ended before the crash: %v\n%s", pid, err, tail(out.String(), 30))
		default:
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		traced := regexp.MustCompile(`(?m)^TracerPid:\s+[1-9]`).Match(st)
		stopped := regexp.MustCompile(`(?m)^State:\s+t`).Match(st)
		if traced && !stopped {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("gdb did not attach to %d within a minute:\n%s", pid, tail(out.String(), 30))
		}
	}
	return func() {
		t.Helper()
		defer cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			cancel()
			<-done
			t.Fatalf("process %d did not crash under gdb within 2 minutes:\n%s", pid, tail(out.String(), 30))
		}
		if st, err := os.Stat(core); err != nil || st.Size() == 0 {
			t.Fatalf("gdb wrote no core for %d:\n%s", pid, tail(out.String(), 30))
		}
		if err := kernelLayout(core); err != nil {
			t.Fatalf("core of %d: %v", pid, err)
		}
	}
}

// kernelLayout rewrites a core gdb wrote (memory segments first, notes and
// section headers at the end) in the layout of the kernel's cores: ELF
// header, program headers, notes, then the memory segments page-aligned,
// and nothing after them. The contents do not change; code that sizes,
// truncates or streams cores sees what it sees in real ones.
func kernelLayout(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("read gdb's core: %w", err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Type != elf.ET_CORE || len(data) < 64 {
		return errors.New("gdb's core is not a 64-bit ELF core")
	}
	const phentsize = 56
	out := make([]byte, 64+phentsize*len(ef.Progs))
	copy(out, data[:64])
	binary.LittleEndian.PutUint64(out[0x20:], 64) // e_phoff
	binary.LittleEndian.PutUint64(out[0x28:], 0)  // e_shoff
	binary.LittleEndian.PutUint16(out[0x36:], phentsize)
	binary.LittleEndian.PutUint16(out[0x3a:], 0) // e_shentsize
	binary.LittleEndian.PutUint16(out[0x3c:], 0) // e_shnum
	binary.LittleEndian.PutUint16(out[0x3e:], 0) // e_shstrndx
	offsets := make([]uint64, len(ef.Progs))
	place := func(p *elf.Prog) error {
		if p.Off+p.Filesz > uint64(len(data)) {
			return fmt.Errorf("segment at %#x runs past the end of gdb's core", p.Off)
		}
		out = append(out, data[p.Off:p.Off+p.Filesz]...)
		return nil
	}
	for pass := 0; pass < 2; pass++ { // notes first, then memory
		for i, p := range ef.Progs {
			if (p.Type == elf.PT_NOTE) != (pass == 0) {
				continue
			}
			align := uint64(4)
			if p.Type == elf.PT_LOAD {
				align = 4096
			}
			for uint64(len(out))%align != 0 {
				out = append(out, 0)
			}
			offsets[i] = uint64(len(out))
			if err := place(p); err != nil {
				return err
			}
		}
	}
	for i, p := range ef.Progs {
		ph := out[64+i*phentsize:]
		binary.LittleEndian.PutUint32(ph[0:], uint32(p.Type))
		binary.LittleEndian.PutUint32(ph[4:], uint32(p.Flags))
		binary.LittleEndian.PutUint64(ph[8:], offsets[i])
		binary.LittleEndian.PutUint64(ph[16:], p.Vaddr)
		binary.LittleEndian.PutUint64(ph[24:], p.Paddr)
		binary.LittleEndian.PutUint64(ph[32:], p.Filesz)
		binary.LittleEndian.PutUint64(ph[40:], p.Memsz)
		align := p.Align
		if p.Type == elf.PT_LOAD {
			align = 4096
		}
		binary.LittleEndian.PutUint64(ph[48:], align)
	}
	return os.WriteFile(path, out, 0o600)
}
