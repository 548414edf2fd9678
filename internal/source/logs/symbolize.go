package logs

import (
	"debug/elf"
	enchex "encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"

	"github.com/coroner-dev/coroner/internal/regular"
)

// Symbolizer names the function at a link-time address of an ELF file. The
// CLI implements it with the symbols package; tests may use anything that
// reads real symbol tables.
type Symbolizer interface {
	// Lookup returns the function containing the link-time virtual address
	// addr of the ELF object at path, and addr's offset from its start.
	Lookup(path string, addr uint64) (name string, offset uint64, ok bool)
}

// DefaultLibDirs are searched, in order, for the file a kernel line names.
var DefaultLibDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib",
	"/usr/local/lib", "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin",
	"/usr/lib/php/*", "/usr/lib64/php/modules", "/usr/lib/apache2/modules", "/usr/lib64/httpd/modules",
}

// FindLibrary resolves the basename the kernel printed to a file on disk.
func FindLibrary(base string, dirs []string) string {
	if base == "" || strings.ContainsAny(base, "/\x00") {
		return ""
	}
	for _, d := range dirs {
		var cands []string
		if strings.ContainsAny(d, "*?[") {
			ms, _ := filepath.Glob(filepath.Join(d, base))
			cands = ms
		} else {
			cands = []string{filepath.Join(d, base)}
		}
		for _, c := range cands {
			if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
				return c
			}
		}
	}
	return ""
}

// SymbolizeFault fills in f.Symbol, f.LibraryPath, f.BuildID, f.Notes and
// f.Explanation. when is the crash time (used to notice a library replaced
// after the crash). It works without a core: 6.x kernels print IP's file
// offset; older ones print the VMA (start+size) that holds IP, which is the
// library's executable PT_LOAD, so file offset = that segment's
// page-aligned p_offset + (IP - start). The link-time address is then
// file offset - p_offset + p_vaddr of the segment holding it.
func SymbolizeFault(f *KernelFault, when time.Time, sym Symbolizer, dirs []string) {
	if f == nil {
		return
	}
	f.Explanation = ExplainFault(f)
	if f.Module == "" || sym == nil {
		return
	}
	path := FindLibrary(f.Module, dirs)
	if path == "" {
		f.Notes = append(f.Notes, fmt.Sprintf("%s not found on this host; cannot name the function", f.Module))
		return
	}
	f.LibraryPath = path
	addr, fileOff, buildID, err := linkAddr(path, f)
	f.BuildID = buildID
	if err == nil && !f.HasFileOffset {
		f.FileOffset, f.HasFileOffset = crash.Addr(fileOff), true
	}
	if err != nil {
		f.Notes = append(f.Notes, err.Error())
		return
	}
	if fi, err := os.Stat(path); err == nil && !when.IsZero() && fi.ModTime().After(when) {
		f.Notes = append(f.Notes, fmt.Sprintf("%s was modified at %s, after the crash: it may not be the file that crashed", path, fi.ModTime().Format(time.RFC3339)))
	}
	if f.Deleted {
		f.Notes = append(f.Notes, "the kernel marked the file (deleted): it was replaced while the process ran (package upgrade without a restart); the name below comes from the new file")
	}
	name, off, ok := sym.Lookup(path, addr)
	if !ok {
		f.Notes = append(f.Notes, fmt.Sprintf("no symbol covers link address %s in %s (stripped; only exported functions are named)", hex(addr), path))
		return
	}
	f.Symbol = name + "+" + hex(off)
}

// linkAddr maps the fault's IP to a link-time address of the file at path
// and returns the file offset used and the file's GNU build-id.
func linkAddr(path string, f *KernelFault) (addr, fileOff uint64, id string, err error) {
	ef, err := regular.OpenELF(path)
	if err != nil {
		return 0, 0, "", fmt.Errorf("open %s: %w", path, err)
	}
	defer ef.Close()
	id = buildID(ef.File)
	const page = 4096
	var exec []*elf.Prog
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			exec = append(exec, p)
		}
	}
	if len(exec) == 0 {
		return 0, 0, id, fmt.Errorf("%s has no executable PT_LOAD segment", path)
	}
	fileOff = uint64(f.FileOffset)
	if !f.HasFileOffset {
		seg := exec[0]
		for _, p := range exec {
			lo := p.Vaddr &^ (page - 1)
			hi := (p.Vaddr + p.Memsz + page - 1) &^ (page - 1)
			if hi-lo == f.VMASize {
				seg = p
				break
			}
		}
		fileOff = seg.Off&^(page-1) + uint64(f.VMAOffset)
	}
	for _, p := range exec {
		if fileOff >= p.Off && fileOff < p.Off+p.Filesz {
			return fileOff - p.Off + p.Vaddr, fileOff, id, nil
		}
	}
	return 0, fileOff, id, fmt.Errorf("file offset %s is outside the executable segments of %s (a different version of the file?)", hex(fileOff), path)
}

// buildID reads the GNU build-id note of an ELF file ("" if none).
func buildID(ef *elf.File) string {
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOTE || s.Size > 1<<16 {
			continue
		}
		b, err := s.Data()
		if err != nil {
			continue
		}
		for len(b) >= 12 {
			nsz := int(ef.ByteOrder.Uint32(b[0:4]))
			dsz := int(ef.ByteOrder.Uint32(b[4:8]))
			typ := ef.ByteOrder.Uint32(b[8:12])
			np := (nsz + 3) &^ 3
			dp := (dsz + 3) &^ 3
			if nsz < 0 || dsz < 0 || 12+np+dp > len(b) || 12+np+dsz > len(b) {
				break
			}
			if typ == 3 && nsz == 4 && string(b[12:15]) == "GNU" {
				return hex2(b[12+np : 12+np+dsz])
			}
			b = b[12+np+dp:]
		}
	}
	return ""
}

func hex2(b []byte) string { return enchex.EncodeToString(b) }

// ExplainFault says in words what a kernel fault line means: the x86 page
// fault error bits and what the address suggests.
func ExplainFault(f *KernelFault) string {
	if f == nil {
		return ""
	}
	var parts []string
	switch f.Type {
	case "segfault":
		e := f.ErrorCode
		who := "kernel-mode"
		if e&4 != 0 {
			who = "user-mode"
		}
		access := "read"
		switch {
		case e&16 != 0:
			access = "instruction fetch"
		case e&2 != 0:
			access = "write"
		}
		page := "of an unmapped address (page not present)"
		if e&1 != 0 {
			page = "violating page protection (the page is mapped but does not allow it)"
		}
		parts = append(parts, fmt.Sprintf("error %d: %s %s %s", e, who, access, page))
		if e&8 != 0 {
			parts = append(parts, "reserved bit set in a page table entry")
		}
		if e&32 != 0 {
			parts = append(parts, "protection-key violation")
		}
		if e&64 != 0 {
			parts = append(parts, "shadow-stack access")
		}
		switch {
		case e&16 != 0 && f.Addr == f.IP:
			parts = append(parts, fmt.Sprintf("the CPU jumped to %s, which is not executable code (a bad function pointer or return address)", hex(f.Addr)))
		case f.Addr < 4096:
			parts = append(parts, fmt.Sprintf("address %s is NULL+%s: a NULL pointer dereference", hex(f.Addr), hex(f.Addr)))
		case e&2 != 0 && e&1 == 0 && absDiff(f.Addr, f.SP) <= 65536:
			parts = append(parts, fmt.Sprintf("address %s is at the stack pointer %s (%s): a stack overflow into the guard page (deep recursion)", hex(f.Addr), hex(f.SP), signedDelta(f.Addr, f.SP)))
		case f.Addr >= 1<<47 && f.Addr < ^crash.Addr(0)-(1<<47):
			parts = append(parts, "non-canonical address: a corrupted pointer")
		}
	case "general protection fault":
		parts = append(parts, "general protection fault: usually a non-canonical (corrupted or uninitialised) pointer was dereferenced; the kernel does not print the address")
	default:
		parts = append(parts, fmt.Sprintf("trap %q", f.Type))
		if strings.Contains(f.Type, "invalid opcode") {
			parts = append(parts, "invalid opcode: a deliberate ud2 (assertion, __builtin_trap) or a jump into data")
		}
	}
	if f.Module == "" {
		parts = append(parts, "IP is in anonymous executable memory: JIT code (PHP opcache JIT or PCRE2 JIT), no file to symbolize")
	}
	return strings.Join(parts, "; ")
}

func absDiff[T ~uint64](a, b T) T {
	if a > b {
		return a - b
	}
	return b - a
}

func signedDelta[T ~uint64](a, b T) string {
	if a >= b {
		return "sp+" + hex(a-b)
	}
	return "sp-" + hex(b-a)
}
