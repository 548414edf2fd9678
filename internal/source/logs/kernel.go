package logs

import (
	"bytes"
	"strconv"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// parseKernelMessage parses the message part of a kernel line (after any
// timestamp and "kernel: " prefix):
//
//	php-fpm8.2[14502]: segfault at 20 ip 00007f955df21fe1 sp 00007ffdbf020490 error 4 in libpcre2-8.so.0.11.2[51fe1,7f955ded2000+6b000] likely on CPU 1 (core 1, socket 0)
//	traps: php-fpm8.2[14502] general protection fault ip:7f955df21fe1 sp:7ffdbf020490 error:0 in libc.so.6[7f955de00000+155000]
//	traps: php[1234] trap invalid opcode ip:55d0c0a0b0c0 sp:7ffd8a0c0d00 error:0 in php[55d0c0800000+300000]
func parseKernelMessage(m []byte) (Event, bool) {
	m = bytes.TrimPrefix(m, []byte("traps: "))
	var f KernelFault
	var kind Kind
	var head, body []byte
	if i := bytes.Index(m, []byte("]: segfault at ")); i > 0 {
		kind, f.Type = KindSegfault, "segfault"
		head, body = m[:i+1], m[i+15:]
		f.Addr = hexField[crash.Addr](body)
		body = skipWord(body)
		var ok bool
		if f.IP, body, ok = keyHex[crash.Addr](body, "ip "); !ok {
			return Event{}, false
		}
		if f.SP, body, ok = keyHex[crash.Addr](body, "sp "); !ok {
			return Event{}, false
		}
		if f.ErrorCode, body, ok = keyHex[uint64](body, "error "); !ok {
			return Event{}, false
		}
	} else if i := bytes.Index(m, []byte("] general protection")); i > 0 {
		kind, f.Type = KindGPF, "general protection fault"
		head, body = m[:i+1], m[i+1:]
		if err := parseTrapRegs(body, &f); !err {
			return Event{}, false
		}
	} else if i := bytes.Index(m, []byte("] trap ")); i > 0 {
		kind = KindTrap
		head, body = m[:i+1], m[i+7:]
		if e := bytes.Index(body, []byte(" ip:")); e > 0 {
			f.Type = string(bounded(body[:e], 64))
		}
		if ok := parseTrapRegs(body, &f); !ok {
			return Event{}, false
		}
	} else {
		return Event{}, false
	}
	lb := bytes.LastIndexByte(head, '[')
	if lb < 0 {
		return Event{}, false
	}
	pid, ok := digits(head[lb+1 : len(head)-1])
	if !ok {
		return Event{}, false
	}
	ev := Event{Source: SrcKernel, Kind: kind, PID: pid, Comm: string(bounded(head[:lb], 64))}
	parseModule(body, &f)
	if c := bytes.Index(body, []byte(" on CPU ")); c >= 0 {
		f.CPU = leadingInt(body[c+8:])
	}
	ev.Fault = &f
	return ev, true
}

// parseTrapRegs parses "... ip:7f.. sp:7f.. error:0 ...".
func parseTrapRegs(b []byte, f *KernelFault) bool {
	var ok bool
	if f.IP, _, ok = keyHex[crash.Addr](b, "ip:"); !ok {
		return false
	}
	f.SP, _, _ = keyHex[crash.Addr](b, "sp:")
	f.ErrorCode, _, _ = keyHex[uint64](b, "error:")
	return true
}

// keyHex finds key in b and parses the hex number after it; it returns the
// rest of b after the number.
func keyHex[T ~uint64](b []byte, key string) (T, []byte, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, b, false
	}
	b = b[i+len(key):]
	n := 0
	for n < len(b) && isHex(b[n]) {
		n++
	}
	if n == 0 || n > 16 {
		return 0, b, false
	}
	v, err := strconv.ParseUint(string(b[:n]), 16, 64)
	if err != nil {
		return 0, b, false
	}
	return T(v), b[n:], true
}

func hexField[T ~uint64](b []byte) T {
	n := 0
	for n < len(b) && isHex(b[n]) {
		n++
	}
	if n == 0 || n > 16 {
		return 0
	}
	v, _ := strconv.ParseUint(string(b[:n]), 16, 64)
	return T(v)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func skipWord(b []byte) []byte {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[i+1:]
	}
	return nil
}

// parseModule parses " in FILE[OFF,START+SIZE]" (6.x) or " in FILE[START+SIZE]".
func parseModule(b []byte, f *KernelFault) {
	i := bytes.Index(b, []byte(" in "))
	if i < 0 {
		return
	}
	b = b[i+4:]
	rb := bytes.Index(b, []byte("]"))
	if rb < 0 {
		return
	}
	b = b[:rb]
	lb := bytes.LastIndexByte(b, '[')
	if lb <= 0 {
		return
	}
	name := b[:lb]
	if d := bytes.Index(name, []byte(" (deleted)")); d >= 0 {
		f.Deleted = true
		name = name[:d]
	}
	f.Module = string(bounded(name, 256))
	br := b[lb+1:]
	if c := bytes.IndexByte(br, ','); c >= 0 {
		f.FileOffset = hexField[crash.Addr](br[:c])
		f.HasFileOffset = true
		br = br[c+1:]
	}
	p := bytes.IndexByte(br, '+')
	if p < 0 {
		return
	}
	f.VMAStart = hexField[crash.Addr](br[:p])
	f.VMASize = hexField[uint64](br[p+1:])
	if f.IP >= f.VMAStart {
		f.VMAOffset = f.IP - f.VMAStart
	}
}

// parseCoredumpMessage parses systemd-coredump's
// "Process 14502 (php-fpm8.2) of user 33 dumped core." (plus the stack that
// follows in the same journal message).
func parseCoredumpMessage(m []byte) (Event, bool) {
	i := bytes.Index(m, []byte("Process "))
	if i < 0 || !bytes.Contains(m, []byte("dumped core")) {
		return Event{}, false
	}
	r := m[i+8:]
	pid := leadingInt(r)
	if pid <= 0 {
		return Event{}, false
	}
	ev := Event{Source: SrcCoredump, Kind: KindCoredump, PID: pid, CoreDumped: true}
	if o := bytes.IndexByte(r, '('); o >= 0 {
		if c := bytes.Index(r[o:], []byte(") of user")); c > 0 {
			ev.Comm = string(bounded(r[o+1:o+c], 64))
		}
	}
	if s := bytes.Index(m, []byte("terminated abnormally with signal ")); s >= 0 {
		ev.Signal = leadingInt(m[s+34:])
	}
	ev.BuildIDs = coredumpBuildIDs(m)
	// The first frame of the stack, "#0  0x00007f.. pcre2_jit_match_8 (libpcre2-8.so.0 + 0x51fe1)".
	if s := bytes.Index(m, []byte("#0 ")); s >= 0 {
		fr := m[s+3:]
		if e := bytes.IndexAny(fr, "\n#"); e >= 0 {
			fr = fr[:e]
		}
		ev.Message = coredumpSite(bytes.TrimSpace(fr))
	}
	return ev, true
}

// coredumpSite turns systemd-coredump's first frame
// "0x00007f1d5f2a9e2c __pthread_kill_implementation (libc.so.6 + 0x8ae2c)"
// into "libc.so.6!__pthread_kill_implementation", or "libc.so.6+0x8ae2c"
// when the function is unknown ("n/a").
func coredumpSite(fr []byte) string {
	fields := bytes.Fields(fr)
	o := bytes.IndexByte(fr, '(')
	c := bytes.LastIndexByte(fr, ')')
	if len(fields) < 3 || o < 0 || c < o {
		return string(bounded(fr, 512))
	}
	fn := fields[1]
	lib, off, ok := bytes.Cut(fr[o+1:c], []byte(" + "))
	if !ok {
		return string(bounded(fr, 512))
	}
	if bytes.Equal(fn, []byte("n/a")) || fn[0] == '(' {
		return string(bounded(lib, 256)) + "+" + string(bounded(off, 20))
	}
	return string(bounded(lib, 256)) + "!" + string(bounded(fn, 256))
}

// parseApache parses an Apache error-log line of interest:
//
//	[Thu Nov 26 19:27:44.123456 2026] [proxy_fcgi:error] [pid 1234:tid 5678] (104)Connection reset by peer: [client 127.0.0.1:5555] AH01075: Error dispatching request to : (polling)
//	[Thu Nov 26 19:27:44.123456 2026] [core:notice] [pid 1000:tid 1000] AH00051: child pid 1234 exit signal Segmentation fault (11), possible coredump in /etc/apache2
//	[Thu Nov 26 19:27:44.123456 2026] [core:notice] [pid 1000] AH00052: child pid 1234 exit signal Segmentation fault (11)
//	[Thu Nov 26 19:27:44 2026] [notice] child pid 1234 exit signal Segmentation fault (11), possible coredump in /etc/httpd  (Apache 2.2)
//
// AH00051 says the child dumped core (WCOREDUMP) into CoreDumpDirectory
// (Event.CoreDir), AH00052 that it died without a core.
func parseApacheRest(rest []byte) (Event, bool) {
	ev := Event{Source: SrcApache}
	switch {
	case bytes.Contains(rest, []byte("child pid ")) && bytes.Contains(rest, []byte(" exit signal ")):
		i := bytes.Index(rest, []byte("child pid "))
		r := rest[i+10:]
		ev.Kind = KindApacheChild
		ev.PID = leadingInt(r)
		if ev.PID <= 0 {
			return Event{}, false
		}
		sig := r[bytes.Index(r, []byte(" exit signal "))+13:]
		// "Segmentation fault (11)": the number in the first "(N)"
		for o := bytes.IndexByte(sig, '('); o >= 0; {
			if n := leadingInt(sig[o+1:]); n > 0 && n < 65 {
				ev.Signal = n
				break
			}
			next := bytes.IndexByte(sig[o+1:], '(')
			if next < 0 {
				break
			}
			o += 1 + next
		}
		if ev.Signal != 0 {
			ev.SignalName = signals.Name(ev.Signal)
		}
		if c := bytes.Index(sig, []byte("possible coredump in ")); c >= 0 {
			ev.CoreDumped = true
			ev.CoreDir = string(bounded(bytes.TrimSpace(sig[c+21:]), 512))
		}
	case bytes.Contains(rest, []byte("AH01075")), bytes.Contains(rest, []byte("AH01067")),
		bytes.Contains(rest, []byte("AH01068")), bytes.Contains(rest, []byte("AH00957")):
		ev.Kind = KindUpstreamOther
		switch {
		case bytes.Contains(rest, []byte("Connection reset by peer")):
			ev.Kind = KindUpstreamReset
		case bytes.Contains(rest, []byte("AH01067")):
			ev.Kind = KindUpstreamClosed
		case bytes.Contains(rest, []byte("AH00957")):
			ev.Kind = KindConnectFailed
		}
		if o := bytes.Index(rest, []byte("] (")); o >= 0 {
			ev.Errno = leadingInt(rest[o+3:])
		}
		if c := bytes.Index(rest, []byte("[client ")); c >= 0 {
			cl := rest[c+8:]
			if e := bytes.IndexByte(cl, ']'); e >= 0 {
				cl = cl[:e]
			}
			if p := bytes.LastIndexByte(cl, ':'); p > 0 {
				cl = cl[:p]
			}
			ev.Client = string(bounded(cl, 64))
		}
	default:
		return Event{}, false
	}
	if p := bytes.Index(rest, []byte("[pid ")); p >= 0 && ev.Kind != KindApacheChild {
		ev.PID = leadingInt(rest[p+5:])
	}
	ev.Message = string(bounded(rest, 1024))
	return ev, true
}

// maxBuildIDs bounds the modules remembered per coredump message.
const maxBuildIDs = 512

// coredumpBuildIDs collects "Module NAME [...] with build-id ID" lines.
func coredumpBuildIDs(m []byte) map[string]string {
	var out map[string]string
	for len(m) > 0 {
		i := bytes.Index(m, []byte("Module "))
		if i < 0 {
			break
		}
		m = m[i+7:]
		end := bytes.IndexByte(m, '\n')
		line := m
		if end >= 0 {
			line = m[:end]
		}
		b := bytes.Index(line, []byte(" with build-id "))
		sp := bytes.IndexByte(line, ' ')
		if b > 0 && sp > 0 {
			id := bytes.TrimSpace(line[b+15:])
			if len(id) > 0 && len(id) <= 128 && isHexString(string(id)) {
				if out == nil {
					out = map[string]string{}
				}
				if len(out) < maxBuildIDs {
					out[string(bounded(line[:sp], 512))] = string(id)
				}
			}
		}
		if end < 0 {
			break
		}
		m = m[end:]
	}
	return out
}
