package doctor

import (
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestTopFramesNameUnnamedFunctions: doctor's evidence names a function
// without a symbol by its start, as the text report does (sub_START), and
// keeps ?? for a frame nothing names.
func TestTopFramesNameUnnamedFunctions(t *testing.T) {
	rep := &crash.Report{Threads: []crash.Thread{{Crashed: true, Frames: []crash.Frame{
		{Module: "php-fpm8.2", ModuleOffset: 0x3769ba, FunctionOffset: 0x4a, FunctionSource: "eh-frame"},
		{Module: "php-fpm8.2", ModuleOffset: 0x2f5558, Function: "object_init_ex", FunctionOffset: 0x38, FunctionSource: "dynsym"},
		{Module: "libffi.so.8", ModuleOffset: 0x6f7a},
	}}}}
	got := strings.Join(topFrames(rep, 3), "\n")
	for _, want := range []string{"#0   sub_376970 (php-fpm8.2+0x3769ba)", "#1   object_init_ex (php-fpm8.2+0x2f5558)", "#2   ?? (libffi.so.8+0x6f7a)"} {
		if !strings.Contains(got, want) {
			t.Errorf("frames:\n%s\nwant %q", got, want)
		}
	}
}
