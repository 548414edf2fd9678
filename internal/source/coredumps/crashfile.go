package coredumps

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// CrashReport is the text part of an Apport problem report (.crash file).
type CrashReport struct {
	// Fields holds the text fields; multi-line values are joined with "\n"
	// (the leading space of continuation lines removed).
	Fields map[string]string
	// Binary lists the keys of base64-encoded (binary) fields, in file order.
	Binary []string
	// Warnings are problems that did not stop parsing.
	Warnings []string
}

// Limits of the .crash parser: one line may hold a base64 chunk of 128 KiB
// (apport's CHUNK_SIZE) and older apport wrote bigger ones; a text value is
// bounded so a hostile report cannot exhaust memory.
const (
	maxCrashLine      = 16 << 20
	maxCrashTextValue = 8 << 20
	maxCrashFields    = 4096
)

// ErrLineTooLong is returned for a .crash line beyond the parser's bound.
var ErrLineTooLong = errors.New("line longer than 16 MiB")

// ParseCrash reads an Apport problem report from r: RFC822-like "Key: value"
// lines, continuation lines starting with a space, and binary fields written
// as "Key: base64" followed by lines that each hold one independently
// base64-encoded chunk of a compressed stream (gzip, zstd, or zlib in very
// old reports). Text fields are collected; binary fields are skipped unless
// binary returns a non-nil writer for their key, in which case the decoded
// (still compressed) bytes are streamed to it, chunk by chunk.
func ParseCrash(r io.Reader, binary func(key string) io.Writer) (*CrashReport, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	rep := &CrashReport{Fields: map[string]string{}}
	var (
		key     string
		text    strings.Builder
		inBin   bool
		sink    io.Writer
		lineNo  int
		dropped bool
	)
	flush := func() {
		if key != "" && !inBin {
			rep.Fields[key] = text.String()
		}
		key, inBin, sink, dropped = "", false, nil, false
		text.Reset()
	}
	for {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			flush()
			return rep, fmt.Errorf("line %d: %w", lineNo+1, err)
		}
		if line == nil && errors.Is(err, io.EOF) {
			break
		}
		lineNo++
		if len(line) > 0 && line[0] == ' ' {
			if key == "" {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("line %d: continuation line without a field", lineNo))
				continue
			}
			if inBin {
				if sink != nil {
					chunk := bytes.TrimSpace(line)
					dec := make([]byte, base64.StdEncoding.DecodedLen(len(chunk)))
					n, derr := base64.StdEncoding.Decode(dec, chunk)
					if derr != nil {
						flush()
						return rep, fmt.Errorf("line %d: field %s: bad base64: %w", lineNo, key, derr)
					}
					if _, werr := sink.Write(dec[:n]); werr != nil {
						flush()
						return rep, fmt.Errorf("line %d: field %s: %w", lineNo, key, werr)
					}
				}
			} else if !dropped {
				if text.Len()+len(line) > maxCrashTextValue {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("field %s: value longer than %d bytes, cut", key, maxCrashTextValue))
					dropped = true
				} else {
					text.WriteByte('\n')
					text.Write(line[1:])
				}
			}
		} else if len(line) > 0 {
			flush()
			k, v, ok := bytes.Cut(line, []byte(":"))
			if !ok || len(k) == 0 || !isASCIIKey(k) {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("line %d: not a \"Key: value\" line", lineNo))
			} else if len(rep.Fields)+len(rep.Binary) >= maxCrashFields {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("line %d: more than %d fields, rest ignored", lineNo, maxCrashFields))
			} else {
				key = string(k)
				v = bytes.TrimSpace(v)
				if string(v) == "base64" {
					inBin = true
					rep.Binary = append(rep.Binary, key)
					if binary != nil {
						sink = binary(key)
					}
				} else {
					text.Write(v)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	flush()
	return rep, nil
}

// readLine returns the next line without its newline, nil at EOF. Lines
// beyond maxCrashLine are an error.
func readLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(frag) > maxCrashLine {
				return nil, ErrLineTooLong
			}
			long = append(long, frag...)
			continue
		}
		if long != nil {
			frag = append(long, frag...)
		}
		if len(frag) == 0 && err != nil {
			return nil, err
		}
		frag = bytes.TrimSuffix(frag, []byte("\n"))
		frag = bytes.TrimSuffix(frag, []byte("\r"))
		return frag, err
	}
}

func isASCIIKey(k []byte) bool {
	for _, c := range k {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
