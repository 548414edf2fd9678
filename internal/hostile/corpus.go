// Package hostile makes, at test time, files crafted to hang, exhaust or
// fool coroner: cores whose notes cover hundreds of megabytes of zeros,
// 100,000 threads, NT_FILE entries naming FIFOs and devices, escape
// sequences and secrets in every string field, note-less and truncated
// cores, compressed cores that end early or decompress to gigabytes, and
// logs with the same payloads. Nothing is checked in: Generate writes the
// corpus into a directory, and the tests run every command on it with
// limits (time, memory) and look for raw control characters and secrets
// in what comes out.
package hostile

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Payloads put into every string field of the corpus.
const (
	// Escape clears the screen and sets the terminal title.
	Escape = "\x1b[2J\x1b]0;pwned\x07"
	// Newline forges a line of output.
	Newline = "\nFAULT: forged line\r"
	// HTML is markup a Markdown or HTML renderer must not emit.
	HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>"
	// C1 is the 8-bit CSI (as UTF-8 and as a raw byte) and a right-to-left
	// override.
	C1 = "\u009b31m\x9b\u202e"
)

// Secret is the credential the corpus hides in query strings, command
// lines and log lines: it must never appear in an output unless secrets
// are asked for.
const Secret = "hunter2Xq9"

// Case is one crafted file.
type Case struct {
	// Name is short and unique ("zero-note-256m").
	Name string
	// Path is the file.
	Path string
	// Attack says what the file does to a reader that trusts it.
	Attack string
	// Kind is "core" (give it to analyze, php, report, replay, cores) or
	// "log" (give it to logs, doctor).
	Kind string
}

// Corpus is a generated hostile corpus.
type Corpus struct {
	Dir   string
	Cases []Case
	// FIFO is a named pipe in Dir: opening it for reading blocks until a
	// writer comes, forever.
	FIFO string
	// Bytes is the corpus's apparent size, Disk what it takes on disk
	// (holes are not stored).
	Bytes, Disk int64
}

// Cores returns the cases of kind "core".
func (c *Corpus) Cores() []Case { return c.kind("core") }

// Logs returns the cases of kind "log".
func (c *Corpus) Logs() []Case { return c.kind("log") }

func (c *Corpus) kind(k string) []Case {
	var out []Case
	for _, cs := range c.Cases {
		if cs.Kind == k {
			out = append(out, cs)
		}
	}
	return out
}

// steps make the corpus, a few related cases each (named).
var steps = []struct {
	names []string
	gen   func(*Corpus) error
}{
	{[]string{"zero-note-256m", "zero-note-256m.zst"}, genZeroNote},
	{[]string{"note-size-1t", "note-counts-lie"}, genNoteSizes},
	{[]string{"threads-100k"}, genThreads},
	{[]string{"nt-file-300k"}, genNTFile},
	{[]string{"segments-65k", "phnum-xnum"}, genSegments},
	{[]string{"nt-file-devices", "nt-file-dotdot"}, genDevices},
	{[]string{"escapes"}, genStrings},
	{[]string{"note-less"}, genNoteless},
	{[]string{"header-only", "empty", "garbage", "truncated"}, genSmall},
	{[]string{"truncated.gz", "truncated.xz", "truncated.lz4", "truncated.zst", "bomb.zst"}, genCompressed},
	{[]string{"stack-loop"}, genStackLoop},
	{[]string{"log:nginx/error.log", "log:php8.2-fpm.log", "log:kern.log", "log:nginx/access.log", "log:long-line", "log:fifo"}, genLogs},
}

// Generate writes the corpus into dir (which must exist).
func Generate(dir string) (*Corpus, error) {
	c, err := newCorpus(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		if err := s.gen(c); err != nil {
			return nil, err
		}
	}
	c.measure()
	return c, nil
}

// Make writes the case named name (and the others made with it) into dir
// and returns it: for tests of one reader.
func Make(dir, name string) (Case, error) {
	for _, s := range steps {
		if !slices.Contains(s.names, name) {
			continue
		}
		c, err := newCorpus(dir)
		if err != nil {
			return Case{}, err
		}
		if err := s.gen(c); err != nil {
			return Case{}, err
		}
		for _, cs := range c.Cases {
			if cs.Name == name {
				return cs, nil
			}
		}
	}
	return Case{}, fmt.Errorf("hostile: no case %q", name)
}

func newCorpus(dir string) (*Corpus, error) {
	c := &Corpus{Dir: dir, FIFO: filepath.Join(dir, "fifo")}
	if err := syscall.Mkfifo(c.FIFO, 0o600); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	return c, nil
}

func (c *Corpus) measure() {
	for _, cs := range c.Cases {
		if st, err := os.Stat(cs.Path); err == nil {
			c.Bytes += st.Size()
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				c.Disk += sys.Blocks * 512
			}
		}
	}
}

func (c *Corpus) add(name, kind, attack string) string {
	p := filepath.Join(c.Dir, name)
	c.Cases = append(c.Cases, Case{Name: name, Path: p, Attack: attack, Kind: kind})
	return p
}

// Addresses of the synthetic process.
const (
	exeStart   = 0x555555554000
	codeStart  = 0x555555555000
	stackStart = 0x7ffffffde000
	stackEnd   = 0x7ffffffff000
	anonCode   = 0x7f0000000000
)

// retAddr returns the k-th return address of the synthetic code: the
// address after its k-th call instruction.
func retAddr(k int) uint64 { return anonCode + 0x100 + 5*uint64(k%100) + 5 }

// base returns a small core every other case starts from: one thread
// faulting on a NULL read in anonymous code, its stack, NT_PRPSINFO,
// NT_SIGINFO, NT_AUXV, and an NT_FILE naming files that do not exist.
func base(comm, args string, files []fileEntry) *core {
	c := &core{}
	rsp := uint64(stackEnd - 0x1000)
	c.add("CORE", ntPRSTATUS, prstatus(4242, 11, regs{rip: anonCode + 0x10, rsp: rsp, rbp: rsp + 0x40}))
	c.add("CORE", ntPRPSINFO, prpsinfo(4242, comm, args))
	c.add("CORE", ntSIGINFO, siginfo(11, 1, 0))
	c.add("CORE", ntAUXV, auxv(atENTRY, codeStart+0x40, atPHDR, exeStart+0x40))
	if files == nil {
		files = []fileEntry{{exeStart, exeStart + 0x1000, 0, "/nonexistent/php-fpm"}, {codeStart, codeStart + 0x1000, 1, "/nonexistent/php-fpm"}}
	}
	c.add("CORE", ntFILE, fileNote(files))
	stack := make([]byte, stackEnd-stackStart)
	// A frame-pointer chain of a few frames, then zeros.
	for i, fp := 0, rsp+0x40; i < 8; i++ {
		next := fp + 0x40
		le.PutUint64(stack[fp-stackStart:], next)
		le.PutUint64(stack[fp-stackStart+8:], retAddr(i))
		fp = next
	}
	code := make([]byte, 0x1000)
	for i := range code {
		code[i] = 0x90 // nop
	}
	copy(code[0x10:], []byte{0x48, 0x8b, 0x07}) // mov rax, [rdi]
	// From 0x100 on, calls (e8 rel32): the return addresses of the stacks
	// follow one, as real return addresses do.
	for off := 0x100; off+5 <= len(code); off += 5 {
		copy(code[off:], []byte{0xe8, 0, 0, 0, 0})
	}
	c.segs = append(c.segs,
		segment{vaddr: anonCode, memsz: 0x1000, flags: pfR | pfX, data: code},
		segment{vaddr: stackStart, memsz: stackEnd - stackStart, flags: pfR | pfW, data: stack},
	)
	return c
}

func genZeroNote(c *Corpus) error {
	k := base("zeros", "zeros", nil)
	k.noteZeros = 256 << 20
	p := c.add("zero-note-256m", "core", "PT_NOTE covering 256 MiB of zero bytes (22 million empty notes), sparse on disk")
	if err := k.write(p); err != nil {
		return err
	}
	z := c.add("zero-note-256m.zst", "core", "the same, zstd-compressed")
	return zstdFile(z, p)
}

func genNoteSizes(c *Corpus) error {
	k := base("lies", "lies", nil)
	k.noteFilesz = 1 << 40
	if err := k.write(c.add("note-size-1t", "core", "PT_NOTE claiming 1 TiB in a small file")); err != nil {
		return err
	}
	// One note whose descriptor size is larger than the segment.
	k = base("lies", "lies", nil)
	bad := make([]byte, 12)
	le.PutUint32(bad[0:], 5)
	le.PutUint32(bad[4:], 0xfffffff0)
	le.PutUint32(bad[8:], ntPRSTATUS)
	k.notes = append(k.notes, note{name: "CORE", typ: ntFILE, desc: append(le.AppendUint64(le.AppendUint64(nil, 1<<60), 4096), bad...)})
	return k.write(c.add("note-counts-lie", "core", "NT_FILE claiming 2^60 entries"))
}

func genThreads(c *Corpus) error {
	k := base("threads", "threads", nil)
	rsp := uint64(stackEnd - 0x1000)
	for i := 1; i < 100_000; i++ {
		k.notes = append(k.notes, note{name: "CORE", typ: ntPRSTATUS, desc: prstatus(4242+i, 0, regs{rip: anonCode + 0x20, rsp: rsp, rbp: rsp + 0x40})})
	}
	return k.write(c.add("threads-100k", "core", "100,000 NT_PRSTATUS notes (threads)"))
}

func genNTFile(c *Corpus) error {
	files := make([]fileEntry, 0, 300_000)
	for i := 0; i < 300_000; i++ {
		a := uint64(0x100000000) + uint64(i)*0x1000
		files = append(files, fileEntry{a, a + 0x1000, 0, fmt.Sprintf("/nonexistent/lib%d.so", i)})
	}
	return base("maps", "maps", files).write(c.add("nt-file-300k", "core", "NT_FILE with 300,000 entries, none dumped, each a distinct missing file"))
}

func genSegments(c *Corpus) error {
	k := base("segs", "segs", nil)
	for i := 0; i < 65_000; i++ {
		a := uint64(0x200000000) + uint64(i)*0x2000
		k.segs = append(k.segs, segment{vaddr: a, memsz: 0x1000 + uint64(i), flags: pfR})
	}
	if err := k.write(c.add("segments-65k", "core", "65,000 PT_LOAD segments")); err != nil {
		return err
	}
	k = base("xnum", "xnum", nil)
	k.phnum = 0xffff // PN_XNUM: the real count would be in section 0, which does not exist
	return k.write(c.add("phnum-xnum", "core", "e_phnum = PN_XNUM without a section header"))
}

// genDevices names a FIFO, devices and /proc files as mapped files: a reader
// that opens them blocks or reads forever.
func genDevices(c *Corpus) error {
	paths := []string{c.FIFO, "/dev/zero", "/dev/stdin", "/dev/tty", "/dev/urandom", "/proc/kmsg", "/proc/self/mem", "/", "/etc/shadow"}
	var files []fileEntry
	k := base("devices", "devices", nil)
	k.notes = k.notes[:len(k.notes)-1] // a new NT_FILE
	k.notes[3] = note{name: "CORE", typ: ntAUXV, desc: auxv(atENTRY, 0x10000040, atPHDR, 0x10000040)}
	for i, p := range paths {
		a := uint64(0x10000000) + uint64(i)*0x10000
		files = append(files, fileEntry{a, a + 0x10000, 0, p})
		// Present in the core as segments with nothing dumped, so that
		// reading them goes to the file.
		k.segs = append(k.segs, segment{vaddr: a, memsz: 0x10000, flags: pfR | pfX})
	}
	k.add("CORE", ntFILE, fileNote(files))
	if err := k.write(c.add("nt-file-devices", "core", "NT_FILE naming a FIFO, /dev/zero, /dev/stdin, /dev/tty, /proc/kmsg, a directory; the executable is the FIFO")); err != nil {
		return err
	}
	// The same behind a sysroot that tries to climb out of it.
	for i := range files {
		files[i].path = "/../../../../.." + files[i].path
	}
	k.notes[len(k.notes)-1] = note{name: "CORE", typ: ntFILE, desc: fileNote(files)}
	return k.write(c.add("nt-file-dotdot", "core", "NT_FILE paths climbing out of a sysroot with ../"))
}

// genStrings puts the payloads into every string a core carries.
func genStrings(c *Corpus) error {
	evil := Escape + Newline + HTML + C1
	args := "php-fpm: pool www --password=" + Secret + " " + Escape + "\n"
	files := []fileEntry{
		{exeStart, exeStart + 0x1000, 0, "/srv/" + evil + "/php-fpm"},
		{codeStart, codeStart + 0x1000, 1, "/srv/" + evil + "/php-fpm"},
		{0x7f1000000000, 0x7f1000001000, 0, "/lib/lib" + Escape + ".so?token=" + Secret},
	}
	return base("\x1b[2J\x1b]0;x\x07\n<b>", args, files).write(c.add("escapes", "core", "escape sequences, newlines, HTML and a secret in the command name, command line and mapped file names"))
}

func genNoteless(c *Corpus) error {
	k := base("x", "x", nil)
	k.noNote = true
	return k.write(c.add("note-less", "core", "a core without PT_NOTE (no threads, no files)"))
}

// genSmall writes files that are barely cores.
func genSmall(c *Corpus) error {
	// The input FuzzReadCoreInfo found: the stream and file readers
	// disagreed on it.
	fuzz := []byte("\x7fELF\x02\x01\x01000000000\x04\x0000\x0100000000000000A0000\x00\x00\x00\x00\x00\x00\x00\x0000000000\x00\x0000\x00\x0000")
	if err := writeFile(c.add("header-only", "core", "a 64-byte ELF header with lying offsets (a fuzz crasher)"), fuzz); err != nil {
		return err
	}
	if err := writeFile(c.add("empty", "core", "an empty file"), nil); err != nil {
		return err
	}
	garbage := bytes.Repeat([]byte("\x1b[2J"+Secret+"\x00\xff"), 512)
	if err := writeFile(c.add("garbage", "core", "no ELF at all, escape sequences"), garbage); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := base("half", "half", nil).writeToBuffer(&b); err != nil {
		return err
	}
	return writeFile(c.add("truncated", "core", "a core cut in the middle of its stack segment"), b.Bytes()[:b.Len()-0x10000])
}

// writeToBuffer writes the core into a buffer (small cores only).
func (k *core) writeToBuffer(b *bytes.Buffer) error {
	f, err := os.CreateTemp("", "hostile-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := k.writeTo(f); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(b, f)
	return err
}

// genCompressed writes compressed cores that end early, and one that
// decompresses to 16 GiB.
func genCompressed(c *Corpus) error {
	var plain bytes.Buffer
	if err := base("zip", "zip", nil).writeToBuffer(&plain); err != nil {
		return err
	}
	half := func(name string, b []byte) error {
		return writeFile(c.add(name, "core", "a compressed core cut in half"), b[:len(b)/2])
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	if err := half("truncated.gz", gz.Bytes()); err != nil {
		return err
	}
	var x bytes.Buffer
	xw, err := xz.NewWriter(&x)
	if err != nil {
		return err
	}
	xw.Write(plain.Bytes())
	xw.Close()
	if err := half("truncated.xz", x.Bytes()); err != nil {
		return err
	}
	var l bytes.Buffer
	lw := lz4.NewWriter(&l)
	lw.Write(plain.Bytes())
	lw.Close()
	if err := half("truncated.lz4", l.Bytes()); err != nil {
		return err
	}
	var z bytes.Buffer
	if err := zstdFrame(&z, plain.Bytes(), 0); err != nil {
		return err
	}
	if err := half("truncated.zst", z.Bytes()); err != nil {
		return err
	}
	// A bomb: an ELF header whose one segment claims 1 TiB, then 16 GiB of
	// zeros in 512 KiB of zstd.
	k := &core{}
	k.segs = []segment{{vaddr: 0x10000, memsz: 1 << 40, flags: pfR}}
	var hb bytes.Buffer
	if err := k.writeToBuffer(&hb); err != nil {
		return err
	}
	head := hb.Bytes()
	le.PutUint64(head[64+32:], 1<<40) // p_filesz of the PT_LOAD
	f, err := os.Create(c.add("bomb.zst", "core", "16 GiB of zeros in 512 KiB of zstd, behind a header claiming a 1 TiB segment"))
	if err != nil {
		return err
	}
	if err := zstdFrame(f, head, 16<<30); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// genStackLoop gives the thread a frame-pointer chain that points to itself
// and a stack of return-address-looking words.
func genStackLoop(c *Corpus) error {
	k := base("loop", "loop", nil)
	stack := k.segs[1].data
	for i := 0; i+16 <= len(stack); i += 16 {
		fp := uint64(stackStart + i)
		le.PutUint64(stack[i:], fp) // saved rbp = this frame: a cycle
		le.PutUint64(stack[i+8:], retAddr(0))
	}
	return k.write(c.add("stack-loop", "core", "frame-pointer chain pointing to itself, a stack full of return addresses"))
}

// zstdFile compresses the file at src into dst: its data as raw blocks,
// its holes (found with SEEK_DATA/SEEK_HOLE) as runs of zeros, so that a
// sparse core of gigabytes compresses in milliseconds.
func zstdFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	const seekData, seekHole = 3, 4
	var parts [][]byte
	var zeros []int64
	for off := int64(0); off < st.Size(); {
		data, err := in.Seek(off, seekData)
		if err != nil { // no data after off: a hole up to the end
			data = st.Size()
		}
		if len(parts) == 0 || parts[len(parts)-1] != nil {
			parts, zeros = append(parts, nil), append(zeros, 0)
		}
		zeros[len(zeros)-1] += data - off
		if data >= st.Size() {
			break
		}
		hole, err := in.Seek(data, seekHole)
		if err != nil {
			return err
		}
		b := make([]byte, hole-data)
		if _, err := in.ReadAt(b, data); err != nil {
			return err
		}
		parts, zeros = append(parts, b), append(zeros, 0)
		off = hole
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := zstdFrameParts(out, parts, zeros); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// zstdFrame writes one zstd frame holding data then zeros zero bytes, with
// raw and RLE blocks only (RFC 8878): a compressor of our own, so that a
// bomb costs nothing to make.
func zstdFrame(w io.Writer, data []byte, zeros int64) error {
	return zstdFrameParts(w, [][]byte{data}, []int64{zeros})
}

// zstdFrameParts writes parts[i] raw then zeros[i] zero bytes, for each i.
func zstdFrameParts(w io.Writer, parts [][]byte, zeros []int64) error {
	const maxBlock = 128 << 10
	var out bytes.Buffer
	out.Write([]byte{0x28, 0xb5, 0x2f, 0xfd})
	out.WriteByte(0x00)   // frame header descriptor: no content size, no checksum
	out.WriteByte(7 << 3) // window descriptor: 2^(10+7) = 128 KiB
	type block struct {
		raw  []byte
		rle  int
		last bool
	}
	var blocks []block
	for i := range parts {
		for d := parts[i]; len(d) > 0; {
			n := min(len(d), maxBlock)
			blocks = append(blocks, block{raw: d[:n]})
			d = d[n:]
		}
		for z := zeros[i]; z > 0; {
			n := min(z, maxBlock)
			blocks = append(blocks, block{rle: int(n)})
			z -= n
		}
	}
	if len(blocks) == 0 {
		blocks = append(blocks, block{raw: []byte{}})
	}
	blocks[len(blocks)-1].last = true
	for _, b := range blocks {
		var h uint32
		if b.last {
			h = 1
		}
		if b.raw != nil {
			h |= uint32(len(b.raw)) << 3
		} else {
			h |= 1<<1 | uint32(b.rle)<<3
		}
		out.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16)})
		if b.raw != nil {
			out.Write(b.raw)
		} else {
			out.WriteByte(0)
		}
		if out.Len() > 1<<20 {
			if _, err := w.Write(out.Bytes()); err != nil {
				return err
			}
			out.Reset()
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}

// genLogs writes logs whose lines carry the payloads and the secret, a log
// with one 32 MiB line, and a log that is the FIFO.
func genLogs(c *Corpus) error {
	evil := Escape + HTML + C1
	uri := "/login.php?user=bob&password=" + Secret + "&x=" + strings.ReplaceAll(evil, " ", "%20")
	nginx := fmt.Sprintf("2026/11/26 19:27:44 [error] 14500#14500: *7 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1, server: %s, request: \"GET %s HTTP/1.1\", upstream: \"fastcgi://unix:/run/php/php8.2-fpm.sock:\", host: \"%s\"\n", evil, uri, evil)
	fpm := fmt.Sprintf("[26-Nov-2026 19:27:44] WARNING: [pool www%s] child 14502 exited on signal 11 (SIGSEGV - core dumped) after 0.942805 seconds from start\n", evil)
	kern := fmt.Sprintf("Nov 26 19:27:44 host kernel: [ 1.0] php-fpm%s[14502]: segfault at 20 ip 00007f955df21fe1 sp 00007ffdbf020490 error 4 in libpcre2-8.so.0.11.2[51fe1,7f955ded2000+6b000]\n", Escape)
	access := fmt.Sprintf("127.0.0.1 - - [26/Nov/2026:19:27:44 +0000] \"GET %s HTTP/1.1\" 502 157 \"-\" \"%s\"\n", uri, evil)
	for _, l := range []struct{ name, body string }{
		{"nginx/error.log", nginx + nginx},
		{"php8.2-fpm.log", fpm},
		{"kern.log", kern},
		{"nginx/access.log", access},
	} {
		p := filepath.Join(c.Dir, "logs", l.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeFile(p, []byte(l.body)); err != nil {
			return err
		}
		c.Cases = append(c.Cases, Case{Name: "log:" + l.name, Path: p, Kind: "log", Attack: "escape sequences, HTML and a password in every field"})
	}
	long := filepath.Join(c.Dir, "logs", "long-line.log")
	f, err := os.Create(long)
	if err != nil {
		return err
	}
	line := bytes.Repeat([]byte("segfault at "+Escape), (32<<20)/(12+len(Escape)))
	f.Write(line)
	f.Write([]byte("\n"))
	if err := f.Close(); err != nil {
		return err
	}
	c.Cases = append(c.Cases, Case{Name: "log:long-line", Path: long, Kind: "log", Attack: "one 32 MiB line of keywords and escapes"})
	fifo := filepath.Join(c.Dir, "logs", "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return err
	}
	c.Cases = append(c.Cases, Case{Name: "log:fifo", Path: fifo, Kind: "log", Attack: "a named pipe given as a log"})
	return nil
}
