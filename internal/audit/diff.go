package audit

import (
	"fmt"
	"io"
	"strings"
)

// maxDiffLines bounds the LCS table (files here are config files).
const maxDiffLines = 20000

// unifiedDiff writes a unified diff of a -> b with 3 lines of context.
func unifiedDiff(w io.Writer, nameA, nameB string, a, b []string) error {
	if len(a) > maxDiffLines || len(b) > maxDiffLines {
		_, err := fmt.Fprintf(w, "--- %s\n+++ %s\n(file too large to diff: %d -> %d lines)\n", nameA, nameB, len(a), len(b))
		return err
	}
	// Trim common prefix and suffix, then LCS on the middle.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	am, bm := a[pre:len(a)-suf], b[pre:len(b)-suf]
	type op struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int
		bi   int
	}
	var ops []op
	for i := 0; i < pre; i++ {
		ops = append(ops, op{' ', a[i], i, i})
	}
	n, m := len(am), len(bm)
	if n*m > 16<<20 {
		for i := range am {
			ops = append(ops, op{'-', am[i], pre + i, pre})
		}
		for j := range bm {
			ops = append(ops, op{'+', bm[j], pre + n, pre + j})
		}
	} else {
		l := make([][]int32, n+1)
		for i := range l {
			l[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if am[i] == bm[j] {
					l[i][j] = l[i+1][j+1] + 1
				} else if l[i+1][j] >= l[i][j+1] {
					l[i][j] = l[i+1][j]
				} else {
					l[i][j] = l[i][j+1]
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && am[i] == bm[j]:
				ops = append(ops, op{' ', am[i], pre + i, pre + j})
				i++
				j++
			case j < m && (i == n || l[i][j+1] >= l[i+1][j]):
				ops = append(ops, op{'+', bm[j], pre + i, pre + j})
				j++
			default:
				ops = append(ops, op{'-', am[i], pre + i, pre + j})
				i++
			}
		}
	}
	for i := 0; i < suf; i++ {
		ops = append(ops, op{' ', a[len(a)-suf+i], len(a) - suf + i, len(b) - suf + i})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", nameA, nameB)
	const ctx = 3
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := k - ctx
		if start < 0 {
			start = 0
		}
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(ops) {
				end += min(ctx, run-end)
				break
			}
			end = run
		}
		var aCount, bCount int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aCount++
			}
			if o.kind != '-' {
				bCount++
			}
		}
		aStart, bStart := ops[start].ai+1, ops[start].bi+1
		if aCount == 0 {
			aStart--
		}
		if bCount == 0 {
			bStart--
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", aStart, aCount, bStart, bCount)
		for _, o := range ops[start:end] {
			sb.WriteByte(o.kind)
			sb.WriteString(o.text)
			sb.WriteByte('\n')
		}
		k = end
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func splitLines(b []byte) []string {
	s := string(b)
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// WriteDiff prints the plan: a unified diff per file, created directories,
// the reload commands and notes.
func (p *Plan) WriteDiff(w io.Writer) error {
	var sb strings.Builder
	if len(p.Changes) == 0 {
		sb.WriteString("nothing to change: the configuration already does what the profile asks\n")
	}
	for _, c := range p.Changes {
		for _, r := range c.Reasons {
			fmt.Fprintf(&sb, "# %s\n", r)
		}
		if c.Dir {
			fmt.Fprintf(&sb, "mkdir -m %o %s\n\n", c.Mode, c.Path)
			continue
		}
		a := "a" + c.Path
		if !c.Existed {
			a = "/dev/null"
		}
		if err := unifiedDiff(&sb, a, "b"+c.Path, splitLines(c.Old), splitLines(c.New)); err != nil {
			return err
		}
		sb.WriteByte('\n')
	}
	if len(p.Reload) > 0 {
		sb.WriteString("to make the running system use the changes (coroner fix --apply --reload runs them):\n")
		for _, c := range p.Reload {
			fmt.Fprintf(&sb, "  %s\n", c)
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&sb, "note: %s\n", n)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
