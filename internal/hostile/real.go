package hostile

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

//go:embed c/deep.c
var deepSource []byte

// ErrNoTools is returned when gcc or gdb, needed for a real core, are
// missing.
var ErrNoTools = errors.New("gcc and gdb are needed to make a real core")

// DeepCores compiles a C program that recurses 80,000 calls deep and
// crashes, has gdb dump its core (no kernel.core_pattern involved), and
// returns that core (valid: one thread whose stack unwinds through real
// CFI, about 170 MB to analyse) and a copy with 4,096 threads on that
// stack (hostile: an analysis that keeps every frame of every thread needs
// some 40 GB). Both are written into dir.
func DeepCores(dir string) (valid, many Case, err error) {
	gcc, err1 := exec.LookPath("gcc")
	gdb, err2 := exec.LookPath("gdb")
	if err1 != nil || err2 != nil {
		return Case{}, Case{}, ErrNoTools
	}
	src := filepath.Join(dir, "deep.c")
	exe := filepath.Join(dir, "deep")
	if err := os.WriteFile(src, deepSource, 0o644); err != nil {
		return Case{}, Case{}, err
	}
	if out, err := exec.Command(gcc, "-O0", "-fno-omit-frame-pointer", "-o", exe, src).CombinedOutput(); err != nil {
		return Case{}, Case{}, fmt.Errorf("gcc: %v: %s", err, out)
	}
	core := filepath.Join(dir, "core.deep")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// coredump_filter 0x37 (inherited by the program): gdb includes the
	// text of the mapped files, as the kernel includes their first pages.
	cmd := exec.CommandContext(ctx, "sh", "-c", `echo 0x37 > /proc/self/coredump_filter && exec "$@"`, "sh", gdb,
		"-nx", "-batch", "-iex", "set debuginfod enabled off", "-iex", "set auto-load no",
		"-ex", "set startup-with-shell off", "-ex", "run", "-ex", "generate-core-file "+core, "-ex", "kill", "--args", exe)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if st, serr := os.Stat(core); serr != nil || st.Size() == 0 {
		return Case{}, Case{}, fmt.Errorf("gdb wrote no core (%v): %s", err, out)
	}
	valid = Case{Name: "deep", Path: core, Kind: "core", Attack: "none: a real core, 80,000 frames deep"}
	manyPath := filepath.Join(dir, "core.deep-4096-threads")
	if err := MultiplyThreads(manyPath, core, 4096); err != nil {
		return Case{}, Case{}, err
	}
	many = Case{Name: "deep-4096-threads", Path: manyPath, Kind: "core",
		Attack: "a real core whose 80,000-frame thread is repeated 4,096 times"}
	return valid, many, nil
}

// MultiplyThreads copies the core src to dst with its first NT_PRSTATUS
// note repeated until the core has n threads: every copy unwinds the same
// stack. The new notes are appended to the file and the PT_NOTE program
// header points at them.
func MultiplyThreads(dst, src string, n int) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if len(b) < 64 || !bytes.HasPrefix(b, []byte("\x7fELF\x02\x01")) {
		return fmt.Errorf("%s is not a 64-bit little-endian ELF file", src)
	}
	phoff := le.Uint64(b[32:])
	phentsize := uint64(le.Uint16(b[54:]))
	phnum := uint64(le.Uint16(b[56:]))
	if phentsize < 56 || phoff+phnum*phentsize > uint64(len(b)) {
		return fmt.Errorf("%s: bad program headers", src)
	}
	for i := uint64(0); i < phnum; i++ {
		ph := b[phoff+i*phentsize:]
		if le.Uint32(ph) != ptNOTE {
			continue
		}
		off, size := le.Uint64(ph[8:]), le.Uint64(ph[32:])
		if off+size > uint64(len(b)) {
			return fmt.Errorf("%s: PT_NOTE past the end of the file", src)
		}
		notes := b[off : off+size]
		first, err := firstNote(notes, ntPRSTATUS)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		var extra bytes.Buffer
		extra.Write(notes)
		tid := binary.LittleEndian.Uint32(first[12+8+32:]) // after the header and "CORE\0\0\0\0"
		for k := 1; k < n; k++ {
			c := append([]byte(nil), first...)
			binary.LittleEndian.PutUint32(c[12+8+32:], tid+uint32(k))
			binary.LittleEndian.PutUint16(c[12+8+12:], 0) // pr_cursig: only the first thread took the signal
			extra.Write(c)
		}
		out := append([]byte(nil), b...)
		newOff := uint64(len(out))
		out = append(out, extra.Bytes()...)
		le.PutUint64(out[phoff+i*phentsize+8:], newOff)
		le.PutUint64(out[phoff+i*phentsize+32:], uint64(extra.Len()))
		return writeFile(dst, out)
	}
	return fmt.Errorf("%s has no PT_NOTE", src)
}

// firstNote returns the bytes (header included) of the first note of type
// typ named CORE.
func firstNote(notes []byte, typ uint32) ([]byte, error) {
	for off := 0; off+12 <= len(notes); {
		namesz := int(le.Uint32(notes[off:]))
		descsz := int(le.Uint32(notes[off+4:]))
		end := off + 12 + align4(namesz) + align4(descsz)
		if end > len(notes) || namesz < 0 || descsz < 0 {
			break
		}
		if le.Uint32(notes[off+8:]) == typ && namesz == 5 && string(notes[off+12:off+16]) == "CORE" {
			return notes[off:end], nil
		}
		off = end
	}
	return nil, io.ErrUnexpectedEOF
}

// PatchStrings copies the file src to dst with every occurrence of each
// pair's first string replaced by its second, which must have the same
// length (so a real core keeps its layout: a request URI of a php-fpm core
// gets escape sequences and a password, where PHP reads it). Pairs are
// applied in order; it returns how many replacements were made.
func PatchStrings(dst, src string, pairs [][2]string) (int, error) {
	maxLen := 0
	for _, p := range pairs {
		if len(p[0]) != len(p[1]) || p[0] == "" {
			return 0, fmt.Errorf("patch %q -> %q: not the same length", p[0], p[1])
		}
		maxLen = max(maxLen, len(p[0]))
	}
	if err := copyFile(dst, src, -1); err != nil {
		return 0, err
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	// Find the occurrences in chunks that overlap by maxLen-1 bytes, in
	// the original; write the replacements into the copy.
	const chunk = 8 << 20
	buf := make([]byte, chunk+maxLen)
	done := map[int64]bool{} // bytes already replaced
	n := 0
	for base := int64(0); ; base += chunk {
		k, err := in.ReadAt(buf, base)
		data := buf[:k]
		for _, p := range pairs {
			for i := 0; ; {
				j := bytes.Index(data[i:], []byte(p[0]))
				if j < 0 {
					break
				}
				at := base + int64(i+j)
				free := true
				for o := at; o < at+int64(len(p[0])); o++ {
					free = free && !done[o]
				}
				if free { // not inside an earlier pair's occurrence
					for o := at; o < at+int64(len(p[0])); o++ {
						done[o] = true
					}
					if _, err := out.WriteAt([]byte(p[1]), at); err != nil {
						return n, err
					}
					n++
				}
				i += j + 1
			}
		}
		if err != nil || k < len(buf) {
			break
		}
	}
	return n, out.Close()
}
