package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// maxMiniDebugInfo bounds the decompressed size of .gnu_debugdata.
const maxMiniDebugInfo = 256 << 20

// miniDebugInfo returns the ELF file embedded, xz-compressed, in the
// .gnu_debugdata section ("MiniDebugInfo", as Fedora and RHEL build their
// packages): a .symtab of the functions .dynsym lacks. It is read once;
// nil when the object has none or it cannot be read.
func (o *Object) miniDebugInfo() *elf.File {
	o.miniOnce.Do(func() {
		s := o.elfFile().Section(".gnu_debugdata")
		if s == nil || s.Type == elf.SHT_NOBITS {
			return
		}
		ef, b, err := readMiniDebugInfo(s, int64(s.Size))
		if err != nil {
			o.miniErr = fmt.Errorf("read .gnu_debugdata of %s: %w", o.Path, err)
			return
		}
		o.mini, o.miniSecs = ef, newSectionCacheBytes(b, ef)
	})
	return o.mini
}

// readMiniDebugInfo decompresses an xz stream of size bytes holding an
// ELF file. The dictionary sizes its blocks announce are checked first:
// the decoder allocates them whole.
func readMiniDebugInfo(r io.ReaderAt, size int64) (*elf.File, []byte, error) {
	if size <= 0 || size > maxMiniDebugInfo {
		return nil, nil, fmt.Errorf("implausible size %d", size)
	}
	raw := make([]byte, size)
	if _, err := r.ReadAt(raw, 0); err != nil {
		return nil, nil, err
	}
	if err := checkXZDictionaries(raw, maxXZDictionary); err != nil {
		return nil, nil, err
	}
	x, err := compressed.NewReader(bytes.NewReader(raw), compressed.XZ)
	if err != nil {
		return nil, nil, err
	}
	defer x.Close()
	b, err := io.ReadAll(io.LimitReader(x, maxMiniDebugInfo+1))
	if err != nil {
		return nil, nil, fmt.Errorf("decompress: %w", err)
	}
	if len(b) > maxMiniDebugInfo {
		return nil, nil, fmt.Errorf("more than %d bytes", maxMiniDebugInfo)
	}
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("embedded ELF: %w", err)
	}
	return ef, b, nil
}

// maxXZDictionary is the largest LZMA2 dictionary accepted: xz -9's.
const maxXZDictionary = 64 << 20

var errXZ = errors.New("not a single-stream xz file")

// checkXZDictionaries walks the blocks of a single xz stream through its
// index and fails when one announces a dictionary larger than max (or the
// layout is not one stream: header, blocks, index, footer).
func checkXZDictionaries(b []byte, max uint64) error {
	const hdr, footer = 12, 12
	if len(b) < hdr+footer || string(b[:6]) != "\xfd7zXZ\x00" || string(b[len(b)-2:]) != "YZ" {
		return errXZ
	}
	backward := (uint64(binary.LittleEndian.Uint32(b[len(b)-8:])) + 1) * 4
	if backward+hdr+footer > uint64(len(b)) {
		return errXZ
	}
	indexAt := uint64(len(b)) - footer - backward
	if b[indexAt] != 0 {
		return errXZ
	}
	r := &infoReader{b: b[:uint64(len(b))-footer-4], pos: indexAt + 1} // without the index's CRC32
	records := r.uleb()
	if r.err != nil || records > uint64(len(b)) {
		return errXZ
	}
	at := uint64(hdr)
	for i := uint64(0); i < records; i++ {
		unpadded := r.uleb()
		r.uleb() // uncompressed size
		if r.err != nil || unpadded == 0 || at+unpadded > indexAt {
			return errXZ
		}
		if err := checkXZBlock(b[at:indexAt], max); err != nil {
			return err
		}
		at += (unpadded + 3) &^ 3
	}
	if at != indexAt {
		return errXZ
	}
	return nil
}

// checkXZBlock reads one block header's filter flags.
func checkXZBlock(b []byte, max uint64) error {
	if len(b) < 2 || b[0] == 0 {
		return errXZ
	}
	size := (int(b[0]) + 1) * 4
	if size > len(b) {
		return errXZ
	}
	r := &infoReader{b: b[:size-4], pos: 1}
	flags := r.u8()
	if flags&0x40 != 0 {
		r.uleb() // compressed size
	}
	if flags&0x80 != 0 {
		r.uleb() // uncompressed size
	}
	for f := 0; f <= int(flags&3); f++ {
		id, n := r.uleb(), r.uleb()
		if r.err != nil || n > 16 {
			return errXZ
		}
		props := r.block(n)
		if id == 0x21 && len(props) == 1 { // LZMA2
			code := uint64(props[0] & 0x3f)
			if code > 40 {
				return errXZ
			}
			dict := (2 | code&1) << (code/2 + 11)
			if dict > max {
				return fmt.Errorf("xz block with a %d MiB dictionary (at most %d MiB)", dict>>20, max>>20)
			}
		}
	}
	if r.err != nil {
		return errXZ
	}
	return nil
}
