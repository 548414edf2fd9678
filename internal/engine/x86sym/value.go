package x86sym

import (
	"strconv"

	"golang.org/x/arch/x86/x86asm"
)

// NodeKind says what a Node stands for.
type NodeKind uint8

// The kinds of Node.
const (
	// Unknown is a value the evaluator does not model.
	Unknown NodeKind = iota
	// Const is an absolute number (no base).
	Const
	// Global is the address of a global: Addr is its link-time address.
	Global
	// Arg is the value a register held when the function was entered.
	Arg
	// ThreadPointer is the fs segment base (the thread pointer on x86-64
	// Linux), plus the value From when From is set.
	ThreadPointer
	// Load is the value read from memory at From (Size bytes).
	Load
	// CallResult is what a call left in rax; Addr is the call's target
	// (0 for an indirect call) and Name its symbol, when known.
	CallResult
	// Sum is From + Other: two values added ("add rax,[rip+offset]" with
	// rax the TLS block: the per-thread address of a ZTS global).
	Sum
	// Diff is From - Other ("sub rcx,rax" of two loaded pointers).
	Diff
	// Scaled is From << Shift (a shift, or an index register scaled in an
	// address: "shl rax,5", "[rdx+rax*4]").
	Scaled
	// Masked is From & Mask ("movabs rax,0xffffffffff; and rax,[rdx+0x18]").
	Masked
	// Opaque is the result of an instruction the evaluator does not model
	// (Addr is the instruction's address): nothing is known of it but that
	// it is one value, so that an address computed from it (a hash slot
	// index) still shows its other terms.
	Opaque
)

// Node is the base of a symbolic value. Nodes are compared by Key.
type Node struct {
	Kind NodeKind
	// Addr is the global's address (Global), the call target (CallResult).
	Addr uint64
	// Name is the called symbol (CallResult), when known.
	Name string
	// Reg is the argument register (Arg).
	Reg x86asm.Reg
	// From is the address loaded from (Load), the variable offset added to
	// the thread pointer (ThreadPointer), or the first operand (Sum, Diff,
	// Scaled, Masked).
	From *Value
	// Other is the second term of a Sum or Diff.
	Other *Value
	// Size is the width of a load in bytes.
	Size int
	// Shift is the left shift of a Scaled value.
	Shift uint8
	// Mask is the mask of a Masked value.
	Mask uint64
	key  string
}

// Value is Base + Off. A nil Base is the constant Off; a Base of kind Unknown
// is an unknown value.
type Value struct {
	Base *Node
	Off  int64
}

func newNode(n Node) *Node { return &n }

// nodeKey is the canonical text of a node, computed on first use (most
// intermediate values are never compared).
func (n *Node) nodeKey() string {
	if n.key != "" {
		return n.key
	}
	switch n.Kind {
	case Unknown:
		n.key = "?"
	case Global:
		n.key = "G" + strconv.FormatUint(n.Addr, 16)
	case Arg:
		n.key = "A" + n.Reg.String()
	case ThreadPointer:
		n.key = "TP"
		if n.From != nil {
			n.key = "TP+(" + n.From.Key() + ")"
		}
	case Load:
		n.key = "[" + n.From.Key() + "]" + strconv.Itoa(n.Size)
	case CallResult:
		n.key = "C" + strconv.FormatUint(n.Addr, 16)
		if n.Name != "" {
			n.key = "C(" + n.Name + ")"
		}
	case Sum:
		a, b := n.From.Key(), n.Other.Key()
		if b < a {
			a, b = b, a
		}
		n.key = "(" + a + "+" + b + ")"
	case Diff:
		n.key = "(" + n.From.Key() + "-" + n.Other.Key() + ")"
	case Scaled:
		n.key = "(" + n.From.Key() + "<<" + strconv.Itoa(int(n.Shift)) + ")"
	case Masked:
		n.key = "(" + n.From.Key() + "&" + strconv.FormatUint(n.Mask, 16) + ")"
	case Opaque:
		n.key = "O" + strconv.FormatUint(n.Addr, 16)
	default:
		n.key = "?"
	}
	return n.key
}

var unknownNode = &Node{Kind: Unknown, key: "?"} // shared: its key is set here, not lazily

// threadPointer is the thread pointer plus a variable offset (the zero
// Value for none): "mov rax,[rip+GOTTPOFF]; mov rdx,fs:[rax]" reads the
// thread pointer plus an offset the loader stored in the GOT.
func threadPointer(off Value) *Node {
	if off == (Value{}) {
		return newNode(Node{Kind: ThreadPointer})
	}
	return newNode(Node{Kind: ThreadPointer, From: &off})
}

// add returns a + b for known values.
func add(a, b Value) Value {
	switch {
	case a.IsConst():
		b.Off += a.Off
		return b
	case b.IsConst():
		a.Off += b.Off
		return a
	}
	x, y := Value{Base: a.Base}, Value{Base: b.Base}
	return Value{Base: newNode(Node{Kind: Sum, From: &x, Other: &y}), Off: a.Off + b.Off}
}

// sub returns a - b for known values.
func sub(a, b Value) Value {
	if b.IsConst() {
		a.Off -= b.Off
		return a
	}
	if a.Base != nil && a.Base.nodeKey() == b.Base.nodeKey() {
		return Value{Off: a.Off - b.Off}
	}
	x, y := Value{Base: a.Base}, Value{Base: b.Base}
	return Value{Base: newNode(Node{Kind: Diff, From: &x, Other: &y}), Off: a.Off - b.Off}
}

// shl returns v << n: (X + k) << n is (X << n) + (k << n).
func shl(v Value, n uint8) Value {
	if n >= 64 {
		return unknown()
	}
	if v.IsConst() {
		return Value{Off: v.Off << n}
	}
	if n == 0 {
		return v
	}
	x := Value{Base: v.Base}
	if v.Base.Kind == Scaled && int(v.Base.Shift)+int(n) < 64 {
		x = *v.Base.From
		n += v.Base.Shift
	}
	return Value{Base: newNode(Node{Kind: Scaled, From: &x, Shift: n}), Off: v.Off << n}
}

// and returns v & mask; only a value without a constant part can be masked
// symbolically.
func and(v Value, mask uint64) Value {
	if v.IsConst() {
		return Value{Off: int64(uint64(v.Off) & mask)}
	}
	if v.Off != 0 {
		return unknown()
	}
	x := v
	return Value{Base: newNode(Node{Kind: Masked, From: &x, Mask: mask})}
}

// opaqueAt is the value an unmodelled instruction at pc computes.
func opaqueAt(pc uint64) Value { return Value{Base: newNode(Node{Kind: Opaque, Addr: pc})} }

// unknown is a Value the evaluator cannot describe.
func unknown() Value { return Value{Base: unknownNode} }

// Known reports whether v is modelled.
func (v Value) Known() bool { return v.Base == nil || v.Base.Kind != Unknown }

// IsConst reports whether v is an absolute number.
func (v Value) IsConst() bool { return v.Base == nil }

// Kind is the kind of v's base (Const for a constant).
func (v Value) Kind() NodeKind {
	if v.Base == nil {
		return Const
	}
	return v.Base.Kind
}

// Key is a canonical text of v: equal values have equal keys.
func (v Value) Key() string {
	if v.Base == nil {
		return "#" + strconv.FormatInt(v.Off, 16)
	}
	if v.Off == 0 {
		return v.Base.nodeKey()
	}
	return v.Base.nodeKey() + "+" + strconv.FormatInt(v.Off, 16)
}

// String is Key, for messages.
func (v Value) String() string { return v.Key() }

// Equal reports whether two values are the same expression.
func (v Value) Equal(w Value) bool { return v.Key() == w.Key() }

// depth is the nesting of loads in v.
func (v Value) depth() int {
	d := 0
	for b := v.Base; b != nil && b.Kind == Load; b = b.From.Base {
		d++
	}
	return d
}

// IsLoadOf reports whether v is exactly a load (of any size) from addr.
func (v Value) IsLoadOf(addr Value) bool {
	return v.Off == 0 && v.Base != nil && v.Base.Kind == Load && v.Base.From.Key() == addr.Key()
}

// LoadedFrom returns the address v was loaded from, when v is a load.
func (v Value) LoadedFrom() (Value, bool) {
	if v.Off != 0 || v.Base == nil || v.Base.Kind != Load {
		return Value{}, false
	}
	return *v.Base.From, true
}

// GlobalOf returns the global's address and the offset when v is global+off.
func (v Value) GlobalOf() (addr uint64, off int64, ok bool) {
	if v.Base == nil || v.Base.Kind != Global {
		return 0, 0, false
	}
	return v.Base.Addr, v.Off, true
}

// ArgOf returns the argument register when v is an entry register + off.
func (v Value) ArgOf() (reg x86asm.Reg, off int64, ok bool) {
	if v.Base == nil || v.Base.Kind != Arg {
		return 0, 0, false
	}
	return v.Base.Reg, v.Off, true
}

// Operands returns the two operands of a Sum or Diff, the one operand of a
// Scaled or Masked value (second is the zero Value), without v's constant
// part.
func (v Value) Operands() (Value, Value, bool) {
	if v.Base == nil {
		return Value{}, Value{}, false
	}
	switch v.Base.Kind {
	case Sum, Diff:
		return *v.Base.From, *v.Base.Other, true
	case Scaled, Masked:
		return *v.Base.From, Value{}, true
	}
	return Value{}, Value{}, false
}

// Chain decomposes v as a chain of loads from a root: v is
// [[[Root + Offs[0]] + Offs[1]] ... + Offs[n-1]] + Final, each load of
// Sizes[i] bytes. Root is a value with no constant part that is not a
// plain load (a global, an argument, a call result, a sum...); a v that is
// no load at all has empty Offs and Final = v.Off.
type Chain struct {
	Root  Value
	Offs  []int64
	Sizes []int
	Final int64
}

// Chain returns v's chain of loads (see Chain).
func (v Value) Chain() Chain {
	c := Chain{Final: v.Off}
	cur := Value{Base: v.Base}
	for cur.Base != nil && cur.Base.Kind == Load {
		from := *cur.Base.From
		c.Offs = append(c.Offs, from.Off)
		c.Sizes = append(c.Sizes, cur.Base.Size)
		cur = Value{Base: from.Base}
	}
	for i, j := 0, len(c.Offs)-1; i < j; i, j = i+1, j-1 {
		c.Offs[i], c.Offs[j] = c.Offs[j], c.Offs[i]
		c.Sizes[i], c.Sizes[j] = c.Sizes[j], c.Sizes[i]
	}
	c.Root = cur
	return c
}

// Depth is the number of loads in the chain.
func (c Chain) Depth() int { return len(c.Offs) }

// LoadOf is the value a load of size bytes at addr gives.
func LoadOf(addr Value, size int) Value {
	a := addr
	return Value{Base: newNode(Node{Kind: Load, From: &a, Size: size})}
}
