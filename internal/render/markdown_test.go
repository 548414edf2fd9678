package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

var updateMarkdown = flag.Bool("update-markdown", false, "rewrite the Markdown golden files in testdata/markdown")

// TestMarkdownGolden renders each testdata/markdown/NAME.json report and
// compares it with NAME.md.
func TestMarkdownGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "markdown", "*.json"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs in testdata/markdown: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			r := readReport(t, in)
			var buf bytes.Buffer
			if err := Markdown(&buf, r); err != nil {
				t.Fatalf("Markdown: %v", err)
			}
			golden := strings.TrimSuffix(in, ".json") + ".md"
			if *updateMarkdown {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update-markdown to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("output differs from %s (run with -update-markdown after checking):\n%s", golden, lineDiff(string(want), buf.String()))
			}
		})
	}
}

func readReport(t *testing.T, path string) *crash.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r crash.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &r
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + itoa(i+1) + ":\n- " + a + "\n+ " + b
		}
	}
	return ""
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestMarkdownContent checks facts a php-src bug report must carry, and
// that secrets and personal data stay out.
func TestMarkdownContent(t *testing.T) {
	r := readReport(t, filepath.Join("testdata", "markdown", "pcre-jit-fault.json"))
	r.PHP.Request.URI = "/login?user=ann&password=hunter2&api_key=K1&next=%2Fhome&token=abc"
	r.PHP.Request.Params = map[string]string{"HTTP_COOKIE": "PHPSESSID=s3cr3t", "HTTP_AUTHORIZATION": "Bearer xyz"}
	r.PHP.Request.UserAgent = "Mozilla/5.0 (secret-agent)"
	var buf bytes.Buffer
	if err := Markdown(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"PHP 8.2.29", "fpm-fcgi (NTS)", "pcre.jit=1", "pcre2_jit_match_8", "App\\Router->match()",
		"/var/www/app/src/Router.php:88", "password=[redacted]", "api_key=[redacted]", "token=[redacted]",
		"user=ann", "next=%2Fhome", "pcre.jit = 0", "coroner fix --mitigate no-pcre-jit",
		"https://github.com/PCRE2Project/pcre2/issues/86", r.Fingerprint,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	for _, bad := range []string{"hunter2", "K1&", "s3cr3t", "Bearer", "secret-agent", "203.0.113.7", "shop.example.test"} {
		if strings.Contains(out, bad) {
			t.Errorf("Markdown leaks %q", bad)
		}
	}
	if strings.Count(out, "```")%2 != 0 {
		t.Errorf("unbalanced code fences")
	}
}

func TestMarkdownFoldsDeepStacks(t *testing.T) {
	r := readReport(t, filepath.Join("testdata", "markdown", "callback-recursion-stack-overflow.json"))
	th := r.CrashedThread()
	c := th.Cycles[0]
	body := append([]crash.Frame(nil), th.Frames[c.Start:c.Start+c.Length]...)
	tail := append([]crash.Frame(nil), th.Frames[c.End+1:]...)
	frames := append([]crash.Frame(nil), th.Frames[:c.Start]...)
	for i := 0; i < 5000; i++ {
		frames = append(frames, body...)
	}
	frames = append(frames, tail...)
	for i := range frames {
		frames[i].Index = i
	}
	th.Frames = frames
	th.Cycles = []crash.Cycle{{Start: c.Start, Length: c.Length, Repeats: 5000, End: c.Start + 5000*c.Length - 1}}
	var buf bytes.Buffer
	if err := Markdown(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, "\n"); n > 250 {
		t.Errorf("%d lines for a 30,000-frame stack: not folded", n)
	}
	if !strings.Contains(out, "repeat 5000 times in total") {
		t.Errorf("no cycle summary line")
	}
	if !strings.Contains(out, "php_execute_script") {
		t.Errorf("outermost frames after the cycle are missing")
	}
}

func TestMarkdownEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := Markdown(&buf, &crash.Report{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "### Crash of a PHP worker\n") {
		t.Errorf("unexpected output: %q", buf.String())
	}
}

// FuzzMarkdown renders arbitrary reports (read back from files): no panic,
// balanced code fences.
func FuzzMarkdown(f *testing.F) {
	for _, name := range []string{"pcre-jit-fault", "oom-killer", "signal-sent-by-process"} {
		data, err := os.ReadFile(filepath.Join("testdata", "markdown", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("{\"threads\":[{\"crashed\":true,\"frames\":[{\"function\":\"a```b\",\"php_frame\":7}],\"cycles\":[{\"start\":0,\"end\":5,\"length\":1}]}],\"php\":{\"request\":{\"uri\":\"/x?token=1&a\"}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r crash.Report
		if json.Unmarshal(data, &r) != nil {
			return
		}
		var buf bytes.Buffer
		if err := Markdown(&buf, &r); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.Contains(line, "```") && strings.TrimSpace(line) != "```" && strings.TrimSpace(line) != "```ini" {
				t.Fatalf("stray code fence in line %q", line)
			}
		}
	})
}
