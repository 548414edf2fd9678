package main

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/coroner-dev/coroner/internal/labtest"
)

var update = flag.Bool("update", false, "rewrite the expected outputs in testdata/script/*.txtar (cmp against a file of the script)")

// TestMain lets the scripts run coroner: the test binary runs main() as
// the coroner command, in a process of its own, exit status included.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"coroner": main})
}

// TestGoldenScripts runs the command line on the checked-in lab cores
// (testdata/script/*.txtar): analyze, analyze --json, php, report,
// version, help, usage errors and exit statuses. They need neither root
// nor the lab; -update rewrites the expected outputs they compare with.
//
// Environment of the scripts: $CORES is the directory of the checked-in
// cores (internal/engine/analyze/testdata/cores), $SYSROOT the files they
// map, $TESTDATA the repository's internal directory (for audit and logs
// test trees). Commands added to testscript's own:
//
//	status CODE command [args...]  run a command, expect this exit status
//	scrub FILE OUT                 FILE (or stdout, stderr) with $WORK and
//	                               $SYSROOT written as such, into OUT
func TestGoldenScripts(t *testing.T) {
	fixtures := labtest.Fixtures(t)
	cores := filepath.Dir(fixtures[0].Dir)
	internal, err := filepath.Abs("../../internal")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("CORES", cores)
			env.Setenv("SYSROOT", fixtures[0].Sysroot)
			env.Setenv("TESTDATA", internal)
			env.Setenv("NO_COLOR", "1")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status": cmdStatus,
			"scrub":  cmdScrub,
		},
	})
}

func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! status")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: status CODE command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: bad exit status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func cmdScrub(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: scrub FILE OUT")
	}
	s := ts.ReadFile(args[0])
	for _, v := range []string{"SYSROOT", "WORK"} {
		if val := ts.Getenv(v); val != "" {
			s = strings.ReplaceAll(s, val, "$"+v)
		}
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(s), 0o644))
}
