package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

func TestPHPText(t *testing.T) {
	ph := &crash.PHP{
		Version: "8.2.36", SAPI: "fpm-fcgi",
		Request: &crash.Request{Method: "GET", URI: "/teachers/profile-sarah/", Host: "example.org", Source: "fastcgi"},
		INI:     map[string]string{"opcache.jit": "tracing", "pcre.jit": "1"},
		Frames: []crash.PHPFrame{
			{Function: "do_shortcode", File: "/srv/app/shortcodes.php", Line: 42, Kind: "user"},
			{Function: "render", Class: "Shortcodes", CallType: "::", File: "/srv/app/shortcodes.php", Line: 18, Kind: "user"},
			{Function: "do_shortcode", File: "/srv/app/shortcodes.php", Line: 42, Kind: "user"},
			{Function: "render", Class: "Shortcodes", CallType: "::", File: "/srv/app/shortcodes.php", Line: 18, Kind: "user"},
			{Function: "do_shortcode", File: "/srv/app/shortcodes.php", Line: 42, Kind: "user"},
			{Function: "render", Class: "Shortcodes", CallType: "::", File: "/srv/app/shortcodes.php", Line: 18, Kind: "user"},
			{Function: "{main}", File: "/srv/index.php", Line: 14, Kind: "main"},
		},
		Cycles: []crash.Cycle{{Start: 0, End: 5, Length: 2, Repeats: 3}},
	}
	var b bytes.Buffer
	if err := PHPText(&b, ph); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"PHP 8.2.36 (fpm-fcgi, NTS)", "/teachers/profile-sarah/", "Shortcodes::render", "{main}", "opcache.jit"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "do_shortcode") >= 3 {
		t.Errorf("the cycle is not folded:\n%s", out)
	}
}
