package render

import "strings"

// OutsideCode returns the text of a Markdown document outside fenced code
// blocks and code spans (CommonMark's rules for backtick fences and runs):
// what a Markdown renderer interprets as markup. Tests use it to check
// that nothing from a core or a log reaches it unescaped.
func OutsideCode(md string) string {
	var out strings.Builder
	fence := ""
	for _, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, "`") == "" {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
			continue
		}
		out.WriteString(withoutSpans(line))
		out.WriteByte('\n')
	}
	return out.String()
}

// withoutSpans removes the code spans of one line: a run of n backticks
// opens a span that the next run of exactly n backticks closes.
func withoutSpans(line string) string {
	var out strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' || (i > 0 && line[i-1] == '\\') {
			out.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		closeAt := -1
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(line) && line[j+m] == '`' {
				m++
			}
			if m == n {
				closeAt = j
				break
			}
			j += m
		}
		if closeAt < 0 {
			out.WriteString(line[i : i+n]) // not a span: literal backticks
			i += n
			continue
		}
		i = closeAt + n
	}
	return out.String()
}
