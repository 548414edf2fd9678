package sanitize

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"plain /index.php?q=1":    "plain /index.php?q=1",
		"\x1b[2J\x1b]0;pwned\x07": `\x1b[2J\x1b]0;pwned\x07`,
		"line\nFAULT: forged\r":   `line\nFAULT: forged\r`,
		"tab\there":               `tab\there`,
		"del\x7f":                 `del\x7f`,
		"c1 \u009b31m":            `c1 \u009b31m`,
		"raw \x9b byte":           `raw \x9b byte`,
		"rtl \u202eevil":          `rtl \u202eevil`,
		"zero\u200bwidth\ufeff":   `zero\u200bwidth\ufeff`,
		"café, 日本, emoji 🎉 stay":  "café, 日本, emoji 🎉 stay",
		"":                        "",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriter: what passes the writer has no control character but
// newline and tab, whatever the writes' boundaries (a UTF-8 sequence split
// between two writes survives), and JSON stays valid.
func TestWriter(t *testing.T) {
	var out bytes.Buffer
	w := Writer(&out)
	in := "ok é\n\x1b[2Jx\u009b\xff日本\ty\n"
	for i := 0; i < len(in); i++ {
		w.Write([]byte(in[i : i+1]))
	}
	got := out.String()
	want := "ok é\n\\u001b[2Jx\\u009b\\u00ff日本\ty\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	out.Reset()
	b, _ := json.Marshal(map[string]string{"uri": "/\x7f\u009b\u202e"})
	w.Write(b)
	var m map[string]string
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["uri"] != "/\x7f\u009b\u202e" {
		t.Errorf("JSON through the writer: %s %v %q", out.Bytes(), err, m["uri"])
	}
}

func TestLogWriter(t *testing.T) {
	var out bytes.Buffer
	LogWriter(&out).Write([]byte("watch: analyse /var/crash/a\nb\x1b[2J: failed\n"))
	if got := out.String(); got != "watch: analyse /var/crash/a\\nb\\x1b[2J: failed\n" {
		t.Errorf("%q", got)
	}
}

func TestMarkdown(t *testing.T) {
	got := MarkdownText("<script>alert(1)</script> *x* [a](b) | `c` \x1b")
	if want := `&lt;script&gt;alert(1)&lt;/script&gt; \*x\* \[a\](b) \| \` + "`c\\`" + ` \\x1b`; got != want {
		t.Errorf("MarkdownText: %q, want %q", got, want)
	}
	for _, s := range []string{"a`b", "``x``", "`", ""} {
		span := CodeSpan(s)
		fence := span[:strings.IndexFunc(span, func(r rune) bool { return r != '`' })]
		if strings.Contains(strings.Trim(span, "`"), fence) || !strings.HasSuffix(span, fence) {
			t.Errorf("CodeSpan(%q) = %q can be closed early", s, span)
		}
	}
	if f := CodeFence("a", "x ```` y"); f != "`````" {
		t.Errorf("CodeFence: %q", f)
	}
}

type kind string

type inner struct {
	Name   kind
	Args   []string
	Params map[string]string
	Any    any
	Next   *inner
	Bytes  []byte
	hidden string
	Nums   []int
}

// TestCopy: every string of a nested value is escaped in the copy, map
// keys included; the original is unchanged; cycles end; unexported fields
// and byte slices are kept.
func TestCopy(t *testing.T) {
	v := &inner{Name: "a\x1b", Args: []string{"b\n"}, Params: map[string]string{"k\r": "v\x07"}, Any: "i\x1b",
		Bytes: []byte("\x1b"), hidden: "\x1b", Nums: []int{1}}
	v.Next = v
	c := Copy(v)
	if c == v || c.Name != `a\x1b` || c.Args[0] != `b\n` || c.Params[`k\r`] != `v\x07` || c.Any != `i\x1b` {
		t.Fatalf("copy %+v", c)
	}
	if c.Next != c {
		t.Error("cycle not kept")
	}
	if string(c.Bytes) != "\x1b" || c.hidden != "\x1b" {
		t.Error("bytes or unexported field changed")
	}
	if v.Name != "a\x1b" || v.Args[0] != "b\n" || v.Params["k\r"] != "v\x07" {
		t.Error("original changed")
	}
	keys := MapStrings(map[string]string{"HTTP_COOKIE": "x", "A": "y"}, func(key, s string) string {
		if key == "HTTP_COOKIE" {
			return "[redacted]"
		}
		return s
	})
	if keys["HTTP_COOKIE"] != "[redacted]" || keys["A"] != "y" {
		t.Errorf("%v", keys)
	}
}

func TestRewrite(t *testing.T) {
	v := &inner{Name: "a\x1b", Args: []string{"b\n"}, Params: map[string]string{"k\r": "v\x07"}, Any: "i\x1b", hidden: "\x1b"}
	v.Next = v
	args := v.Args
	Rewrite(v, func(_, s string) string { return Text(s) })
	if v.Name != `a\x1b` || args[0] != `b\n` || v.Params[`k\r`] != `v\x07` || len(v.Params) != 1 || v.Any != `i\x1b` || v.hidden != "\x1b" {
		t.Fatalf("%+v", v)
	}
}

// FuzzText: whatever the input, Text and Writer emit no character a
// terminal acts on, Lines keeps only newlines, and text with nothing to
// escape passes unchanged.
func FuzzText(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[2J\x1b]0;t\x07", "a\nb\r", "\u009b\x9b\xff\u202e", "é日本🎉", "\xe6\x97"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, out := range map[string]string{"Text": Text(s), "Lines": strings.ReplaceAll(Lines(s), "\n", "")} {
			if i := firstUnsafe(out); i >= 0 {
				t.Fatalf("%s(%q) = %q keeps an unsafe character at %d", name, s, out, i)
			}
		}
		if firstUnsafe(s) < 0 && Text(s) != s {
			t.Fatalf("Text changed safe text %q", s)
		}
		var b bytes.Buffer
		w := Writer(&b)
		half := len(s) / 2
		w.Write([]byte(s[:half]))
		w.Write([]byte(s[half:]))
		out := strings.NewReplacer("\n", "", "\t", "").Replace(b.String())
		if i := firstUnsafe(out); i >= 0 {
			t.Fatalf("Writer(%q) = %q keeps an unsafe character at %d", s, b.String(), i)
		}
	})
}
