package php

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/coroner-dev/coroner/crash"
)

// Bounds on argument rendering.
const (
	maxArgs      = 8  // arguments shown per frame
	maxArgString = 32 // bytes of a string argument shown
)

// fnInfo is what the walk needs of one zend_function (cached per address:
// deep recursion repeats the same few functions).
type fnInfo struct {
	typ       byte
	name      string // "" for the top-level code of a file
	class     string
	file      string
	lineStart uint32
	lineEnd   uint32
	numArgs   uint32 // declared parameters
	opcodes   uint64 // zend_op_array.opcodes
	last      uint32 // zend_op_array.last
	err       error
}

// walker reads PHP call frames with one layout.
type walker struct {
	m       *mem
	l       *Layout
	fns     map[uint64]*fnInfo
	classes map[uint64]string
	warns   []string
	// max bounds the frames walked (maxFrames unless set).
	max int
	// stats says what the walk read, for the layout's validation.
	stats walkStats
}

// walkStats counts what a walk read successfully: each count is evidence
// that the fields it went through are right.
type walkStats struct {
	frames, userFrames, names, files, classes int
	lines, linesInRange                       int
	includes                                  int // include/require/eval frames named from their opline
	// oplinesInOpcodes counts user frames whose EX(opline) points at a
	// zend_op of their function's opcodes[0..last).
	oplinesInOpcodes int
	thisObjects      int // frames whose EX(This) holds an object
	objectClasses    int // classes read through zend_object.ce
	registerLine     bool
	// endsAtMain is true when the outermost frame is a file's top-level
	// code ({main}) with no frame before it.
	endsAtMain bool
	// stopped is true when the walk stopped on something unreadable.
	stopped bool
}

// Bounds on the bytes read per structure (real layouts need far less).
const (
	maxFrameRead = 128
	maxFuncRead  = 64
)

func newWalker(m *mem, l *Layout) *walker {
	return &walker{m: m, l: l, fns: map[uint64]*fnInfo{}, classes: map[uint64]string{}, max: maxFrames}
}

func (w *walker) warn(format string, args ...any) {
	if len(w.warns) < 50 {
		w.warns = append(w.warns, fmt.Sprintf(format, args...))
	}
}

// class returns the name of the zend_class_entry at ce.
func (w *walker) class(ce uint64) (string, error) {
	if ce == 0 {
		return "", nil
	}
	if s, ok := w.classes[ce]; ok {
		return s, nil
	}
	if ce%8 != 0 {
		return "", fmt.Errorf("class entry %#x: %w", ce, errBadPointer)
	}
	p, err := w.m.ptr(ce+w.l.CEName, 8)
	if err != nil {
		return "", fmt.Errorf("class entry %#x: %w", ce, err)
	}
	s, err := w.m.name(p, maxName)
	if err != nil {
		return "", fmt.Errorf("class entry %#x: %w", ce, err)
	}
	w.classes[ce] = s
	w.stats.classes++
	return s, nil
}

// function reads the zend_function at fn.
func (w *walker) function(fn uint64) *fnInfo {
	if fi, ok := w.fns[fn]; ok {
		return fi
	}
	fi := &fnInfo{}
	w.fns[fn] = fi
	if fn%8 != 0 {
		fi.err = fmt.Errorf("zend_function %#x: %w", fn, errBadPointer)
		return fi
	}
	l := w.l
	var b [maxFuncRead]byte
	n := max(l.FnType+1, l.FnName+8, l.FnScope+8)
	if n > maxFuncRead {
		fi.err = fmt.Errorf("zend_function layout out of the bounds coroner reads")
		return fi
	}
	if err := w.m.read(b[:n], fn); err != nil {
		fi.err = fmt.Errorf("zend_function %#x: %w", fn, err)
		return fi
	}
	fi.typ = b[l.FnType]
	if fi.typ < 1 || fi.typ > 4 {
		fi.err = fmt.Errorf("zend_function %#x: type %d", fn, fi.typ)
		return fi
	}
	if p := binary.LittleEndian.Uint64(b[l.FnName:]); p != 0 {
		if fi.name, fi.err = w.m.name(p, maxName); fi.err != nil {
			return fi
		}
		w.stats.names++
	}
	if fi.class, fi.err = w.class(binary.LittleEndian.Uint64(b[l.FnScope:])); fi.err != nil {
		return fi
	}
	if n, err := w.m.u32(fn + l.FnNumArgs); err == nil && n < 1<<16 {
		fi.numArgs = n
	}
	if fi.typ == 1 {
		return fi
	}
	p, err := w.m.ptr(fn+w.l.OpArrayFilename, 8)
	if err != nil {
		fi.err = fmt.Errorf("zend_op_array %#x filename: %w", fn, err)
		return fi
	}
	if fi.file, fi.err = w.m.name(p, maxPath); fi.err != nil {
		return fi
	}
	w.stats.files++
	if ops, err := w.m.ptr(fn+w.l.OpArrayOpcodes, 8); err == nil {
		if n, err := w.m.u32(fn + w.l.OpArrayLast); err == nil && n < 1<<24 {
			fi.opcodes, fi.last = ops, n
		}
	}
	if s, err := w.m.u32(fn + w.l.OpArrayLineStart); err == nil {
		if e, err := w.m.u32(fn + w.l.OpArrayLineEnd); err == nil {
			fi.lineStart, fi.lineEnd = s, e
		}
	}
	return fi
}

// lineAt reads zend_op.lineno at opline, checked against the function's
// line range.
func (w *walker) lineAt(opline uint64, fi *fnInfo) (int, bool) {
	if opline == 0 || opline%8 != 0 {
		return 0, false
	}
	l, err := w.m.u32(opline + w.l.OpLineno)
	if err != nil {
		return 0, false
	}
	w.stats.lines++
	if fi.lineEnd >= fi.lineStart && fi.lineEnd != 0 && (l < fi.lineStart || l > fi.lineEnd) {
		return 0, false
	}
	w.stats.linesInRange++
	return int(l), true
}

// includeKind names the include/eval opcode at opline, or "".
func (w *walker) includeKind(opline uint64) string {
	if opline == 0 || opline%8 != 0 {
		return ""
	}
	var b [4]byte
	op, err := w.m.u32(opline + w.l.OpOpcode)
	if err != nil || byte(op) != byte(w.l.IncludeOrEval) || w.m.read(b[:], opline+w.l.OpExtValue) != nil {
		return ""
	}
	switch binary.LittleEndian.Uint32(b[:]) {
	case 1:
		return "eval"
	case 2:
		return "include"
	case 4:
		return "include_once"
	case 8:
		return "require"
	case 16:
		return "require_once"
	}
	return ""
}

// walk reads the PHP call stack from EG(current_execute_data), innermost
// first. regs are the crashed thread's registers (r14 = execute_data and
// r15 = opline in the hybrid VM and the JIT), used for the innermost user
// frame when they are consistent with it (nil: none).
func (w *walker) walk(eg uint64, regs *crash.Registers) []crash.PHPFrame {
	l := w.l
	ex, err := w.m.ptr(eg+l.EGCurrentExecuteData, 8)
	if err != nil {
		w.warn("EG(current_execute_data): %v", err)
		w.stats.stopped = true
		return nil
	}
	frameRead := max(l.ExOpline+8, l.ExFunc+8, l.ExThis+l.ZvalSize, l.ExPrev+8)
	if frameRead > maxFrameRead || l.ZvalType+8 > l.ZvalSize {
		w.warn("zend_execute_data layout out of the bounds coroner reads")
		w.stats.stopped = true
		return nil
	}
	var frames []crash.PHPFrame
	visited := map[uint64]struct{}{}
	innermostUser := true
	var b [maxFrameRead]byte
	var lastFn *fnInfo
	for ex != 0 {
		if len(frames) >= w.max {
			if w.max == maxFrames {
				w.warn("PHP stack walk stopped after %d frames", maxFrames)
			}
			return frames
		}
		if _, seen := visited[ex]; seen {
			w.warn("PHP stack walk stopped: execute_data %#x appears twice (cycle in prev_execute_data)", ex)
			w.stats.stopped = true
			break
		}
		visited[ex] = struct{}{}
		if ex%8 != 0 {
			w.warn("PHP stack walk stopped: execute_data %#x is misaligned", ex)
			w.stats.stopped = true
			break
		}
		if err := w.m.read(b[:frameRead], ex); err != nil {
			w.warn("PHP stack walk stopped: execute_data: %v", err)
			w.stats.stopped = true
			break
		}
		le := binary.LittleEndian
		opline := le.Uint64(b[l.ExOpline:])
		fn := le.Uint64(b[l.ExFunc:])
		this := decodeZval(b[l.ExThis:l.ExThis+l.ZvalSize], ex+l.ExThis, l.ZvalType)
		if l.ExNumArgs >= l.ExThis && l.ExNumArgs+4 <= frameRead {
			this.u2 = le.Uint32(b[l.ExNumArgs:])
		}
		prev := le.Uint64(b[l.ExPrev:])
		if prev != 0 && (!validPtr(prev) || prev%8 != 0) {
			w.warn("PHP stack walk stopped: prev_execute_data %#x of %#x is not a pointer", prev, ex)
			w.stats.stopped = true
			prev = 0
		}
		if fn == 0 {
			ex = prev // a dummy frame (zend_call_function from C)
			continue
		}
		fi := w.function(fn)
		if fi.err != nil {
			w.warn("PHP stack walk stopped at execute_data %#x: %v", ex, fi.err)
			w.stats.stopped = true
			break
		}
		lastFn = fi
		f := crash.PHPFrame{Function: fi.name, Class: fi.class, ExecuteData: crash.Addr(ex)}
		if fi.class != "" {
			f.CallType = "::"
			if this.typ == isObject {
				f.CallType = "->"
			}
		} else if this.typ == isObject && fi.typ == 1 {
			// a trampoline (FFI, __call): debug_backtrace names the object's class
			if ce, err := w.m.ptr(this.value+l.ObjCE, 8); err == nil {
				if name, err := w.class(ce); err == nil && name != "" {
					f.Class, f.CallType = name, "->"
					w.stats.objectClasses++
				}
			}
		}
		switch {
		case fi.typ == 1:
			f.Kind = crash.PHPInternal
		case fi.name != "":
			f.Kind = crash.PHPUser
		default:
			f.Kind, f.Function = crash.PHPMain, "{main}"
			if prev != 0 {
				if po, err := w.m.u64(prev + l.ExOpline); err == nil {
					if k := w.includeKind(po); k != "" {
						f.Function, f.Kind = k, crash.PHPInclude
						if k == "eval" {
							f.Kind = crash.PHPEval
						}
						w.stats.includes++
					}
				}
			}
			f.Class, f.CallType = "", ""
		}
		if this.typ == isObject {
			w.stats.thisObjects++
		}
		if fi.typ != 1 {
			w.stats.userFrames++
			if w.inOpcodes(opline, fi) {
				w.stats.oplinesInOpcodes++
			}
			f.File = fi.file
			if line, ok := w.lineAt(opline, fi); ok {
				f.Line = line
			}
			if innermostUser {
				innermostUser = false
				if l, ok := w.registerLine(ex, opline, fi, regs); ok {
					f.Line = l
					w.stats.registerLine = true
				}
			}
		}
		f.Args = w.args(ex, this.u2, fi)
		frames = append(frames, f)
		w.stats.frames++
		ex = prev
	}
	if n := len(frames); n > 0 && !w.stats.stopped && lastFn != nil && lastFn.typ != 1 && frames[n-1].Kind == crash.PHPMain {
		w.stats.endsAtMain = true
	}
	return frames
}

// inOpcodes reports whether opline points at a zend_op of the function's
// opcodes[0..last).
func (w *walker) inOpcodes(opline uint64, fi *fnInfo) bool {
	size := w.l.OpSize
	return size != 0 && fi.opcodes != 0 && opline >= fi.opcodes && opline < fi.opcodes+uint64(fi.last)*size && (opline-fi.opcodes)%size == 0
}

// registerLine returns the line of the opline held in r15 when r14 holds
// this frame's execute_data and r15 points into the same opcode array.
func (w *walker) registerLine(ex, opline uint64, fi *fnInfo, regs *crash.Registers) (int, bool) {
	if regs == nil {
		return 0, false
	}
	r14, ok14 := regs.Get(crash.RegR14)
	r15, ok15 := regs.Get(crash.RegR15)
	if !ok14 || !ok15 || r14 != ex || r15 == opline || r15%8 != 0 || opline == 0 {
		return 0, false
	}
	if !w.inOpcodes(r15, fi) {
		return 0, false
	}
	return w.lineAt(r15, fi)
}

// args renders the arguments of a frame.
func (w *walker) args(ex uint64, numArgs uint32, fi *fnInfo) []string {
	n := int(numArgs)
	if fi.typ != 1 && n > int(fi.numArgs) {
		n = int(fi.numArgs) // extra arguments live after the CVs and TMPs
	}
	more := false
	if n > maxArgs {
		n, more = maxArgs, true
	}
	if n <= 0 {
		return []string{} // JSON []: never null
	}
	zs := int(w.l.ZvalSize)
	buf := make([]byte, n*zs)
	if err := w.m.read(buf, ex+w.l.ExArgs); err != nil {
		return []string{}
	}
	out := make([]string, 0, n+1)
	for i := 0; i < n; i++ {
		out = append(out, w.value(decodeZval(buf[i*zs:(i+1)*zs], ex+w.l.ExArgs+uint64(i*zs), w.l.ZvalType), 0))
	}
	if more {
		out = append(out, "...")
	}
	return out
}

// value summarises a zval the way a backtrace shows it.
func (w *walker) value(v zval, depth int) string {
	switch v.typ {
	case isUndef:
		return "undef"
	case isNull:
		return "NULL"
	case isFalse:
		return "false"
	case isTrue:
		return "true"
	case isLong:
		return strconv.FormatInt(int64(v.value), 10)
	case isDouble:
		return strconv.FormatFloat(math.Float64frombits(v.value), 'g', -1, 64)
	case isString:
		s, n, err := w.m.zstr(v.value, maxArgString)
		if err != nil {
			return "string(?)"
		}
		q := strconv.Quote(s)
		if n > uint64(len(s)) {
			q = q[:len(q)-1] + `..."` + fmt.Sprintf("(%d bytes)", n)
		}
		return q
	case isArray:
		if n, err := w.m.u32(v.value + w.l.HTCount); err == nil {
			return fmt.Sprintf("array(%d)", n)
		}
		return "array(?)"
	case isObject:
		ce, err := w.m.ptr(v.value+w.l.ObjCE, 8)
		if err == nil {
			if name, err := w.class(ce); err == nil && name != "" {
				w.stats.objectClasses++
				return "object(" + name + ")"
			}
		}
		return "object(?)"
	case isResource:
		return "resource"
	case isReference:
		if depth == 0 {
			if r, err := w.m.readZval(v.value + w.l.RefVal); err == nil {
				return "&" + w.value(r, depth+1)
			}
		}
		return "&?"
	case byte(w.l.IsIndirect):
		if depth == 0 && w.l.IsIndirect != 0 {
			if r, err := w.m.readZval(v.value); err == nil {
				return w.value(r, depth+1)
			}
		}
		return "?"
	}
	return fmt.Sprintf("type(%d)", v.typ)
}
