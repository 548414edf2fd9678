package main

import (
	"os"
	"testing"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/analyze"
)

// TestCacheDirCoversPHPLayouts: --cache-dir also places (or, with off,
// disables) the cache of PHP's derived layouts, unless CORONER_CACHE_DIR
// says otherwise.
func TestCacheDirCoversPHPLayouts(t *testing.T) {
	for _, c := range []struct{ env, flag, want string }{
		{"", "/some/cache", "/some/cache"},
		{"", "off", "off"},
		{"/explicit", "/some/cache", "/explicit"},
		{"off", "/some/cache", "off"},
	} {
		t.Setenv("CORONER_CACHE_DIR", c.env)
		var s symbolFlags
		cmd := &cobra.Command{Use: "x"}
		s.register(cmd)
		if err := cmd.Flags().Set("cache-dir", c.flag); err != nil {
			t.Fatal(err)
		}
		var opts analyze.Options
		if err := s.apply(&opts); err != nil {
			t.Fatal(err)
		}
		if got := os.Getenv("CORONER_CACHE_DIR"); got != c.want {
			t.Errorf("CORONER_CACHE_DIR=%q --cache-dir %s: php layouts in %q, want %q", c.env, c.flag, got, c.want)
		}
		if wantOpt := map[bool]string{true: "", false: c.flag}[c.flag == "off"]; opts.CacheDir != wantOpt {
			t.Errorf("--cache-dir %s: Options.CacheDir %q", c.flag, opts.CacheDir)
		}
	}
}
