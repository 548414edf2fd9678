package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestTextVirtualFrames: inlined functions are listed before the frame
// they run in (innermost first, as gdb lists them) and marked [inlined];
// tail calls follow the frame they lead to, marked [tail call]; a function
// without a name is sub_START+OFFSET.
func TestTextVirtualFrames(t *testing.T) {
	r := &crash.Report{Threads: []crash.Thread{{TID: 7, Crashed: true, Frames: []crash.Frame{
		{Index: 0, PC: 0x7f00008aeec, Module: "libc.so.6", ModuleOffset: 0x8aeec, Function: "__pthread_kill_implementation",
			FunctionOffset: 0x10c, FunctionSource: "dwarf", File: "./nptl/pthread_kill.c", Line: 44, Trust: crash.TrustContext,
			TailCalls: []crash.VirtualFrame{{Function: "__pthread_kill_internal", File: "./nptl/pthread_kill.c", Line: 78, PC: 0x7f00008af4f, ModuleOffset: 0x8af4f}}},
		{Index: 1, PC: 0x5555555552d1, Module: "app", ModuleOffset: 0x12d1, Function: "std::thread::_State_impl<X>::_M_run",
			FunctionOffset: 0x21, FunctionSource: "dwarf", File: "std_thread.h", Line: 210, Trust: crash.TrustCFI,
			Inlined: []crash.VirtualFrame{{Function: "operator()", File: "app.cpp", Line: 5}, {Function: "std::__invoke_impl<void>", File: "invoke.h", Line: 61}}},
		{Index: 2, PC: 0x7f0000006f7a, Module: "libffi.so.8", ModuleOffset: 0x6f7a, FunctionOffset: 0x52, FunctionSource: "eh-frame", Trust: crash.TrustCFI},
	}}}}
	var buf bytes.Buffer
	if err := Text(&buf, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	order := []string{
		"__pthread_kill_implementation+0x10c", "__pthread_kill_internal", "[tail call] at ./nptl/pthread_kill.c:78",
		"operator()", "[inlined] at app.cpp:5", "std::__invoke_impl<void>", "[inlined] at invoke.h:61",
		"std::thread::_State_impl<X>::_M_run+0x21", "[cfi] at std_thread.h:210",
		"sub_6f28+0x52",
	}
	pos := 0
	for _, w := range order {
		i := strings.Index(out[pos:], w)
		if i < 0 {
			t.Fatalf("%q missing or out of order in:\n%s", w, out)
		}
		pos += i + len(w)
	}
}
