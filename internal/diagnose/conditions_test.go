package diagnose

import (
	"reflect"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestEveryConditionIsCompiled: each field of Cond, set alone, compiles to a
// check (a field added to Cond without its condition function would be
// silently ignored by every rule that uses it).
func TestEveryConditionIsCompiled(t *testing.T) {
	yes := true
	samples := map[string]Cond{
		"Signal":     {Signal: []string{"SIGSEGV"}},
		"Sent":       {Sent: &yes},
		"PHPProcess": {PHPProcess: &yes},
		"Fault":      {Fault: []crash.FaultKind{crash.FaultNullDeref}},
		"Native":     {Native: []FramePattern{{Function: "f"}}},
		"PHP":        {PHP: []FramePattern{{Function: "f"}}},
		"PHPVersion": {PHPVersion: ">=8.0"},
		"INI":        {INI: map[string]string{"pcre.jit": "1"}},
		"JIT":        {JIT: []string{"tracing"}},
		"Extension":  {Extension: "ffi"},
		"Cycle":      {Cycle: &CycleCond{}},
		"MinFrames":  {MinFrames: 100},
		"Module":     {Module: &ModuleCond{Deleted: true}},
		"Kernel":     {Kernel: &KernelCond{}},
		"Message":    {Message: "x"},
		"OOMKill":    {OOMKill: &yes},
		"Repeated":   {Repeated: 2},
		"Truncated":  {Truncated: &yes},
		"Recursion":  {Recursion: "unbounded"},
		"SAPI":       {SAPI: []string{"apache2handler"}},
		"Process":    {Process: &ProcessCond{Running: &yes}},
		"Any":        {Any: []Cond{{Message: "x"}}},
		"None":       {None: []Cond{{Message: "x"}}},
	}
	typ := reflect.TypeOf(Cond{})
	for i := 0; i < typ.NumField(); i++ {
		name := typ.Field(i).Name
		s, ok := samples[name]
		if !ok {
			t.Errorf("Cond.%s: no sample in this test", name)
			continue
		}
		c, err := compileCond(&s, "when", true)
		if err != nil {
			t.Errorf("Cond.%s: %v", name, err)
			continue
		}
		if len(c.checks) != 1 {
			t.Errorf("Cond.%s compiles to %d checks, want 1", name, len(c.checks))
		}
	}
}
