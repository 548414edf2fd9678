package server

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/service/store"
)

type crashPage struct {
	Title  string
	Crash  *store.Crash
	Report *crash.Report
	Thread *crash.Thread
	// Native and PHP are the crashed thread's stack and the PHP stack,
	// folded as the CLI folds them (first repetition of each cycle, then
	// one line for the rest), at most maxStackLines lines each.
	Native, PHP []stackRow
	INI         []kv
	Params      []kv
	Request     *crash.Request
}

// stackRow is one row of a folded stack table: a frame or a cycle summary.
type stackRow struct {
	Native *crash.Frame
	PHP    *crash.PHPFrame
	// Number is the frame number (PHP frames).
	Number int
	// RunsPHP is the PHP function a native frame executes ("" if none).
	RunsPHP string
	// Unnamed names a native frame without a symbol by its function's
	// start (sub_START+OFFSET), as the text report does ("" otherwise).
	Unnamed string
	Cycle   *crash.Cycle
	// More counts the frames left out after the last row.
	More int
}

// maxStackLines bounds the rows of a stack on the crash page.
const maxStackLines = 200

// foldedRows turns the lines of a folded stack into table rows.
func foldedRows(lines []render.Line, n int, row func(pos int) stackRow) []stackRow {
	var out []stackRow
	for _, l := range lines {
		if len(out) == maxStackLines {
			out = append(out, stackRow{More: n - l.Pos})
			break
		}
		if l.Cycle != nil {
			out = append(out, stackRow{Cycle: l.Cycle})
			continue
		}
		out = append(out, row(l.Pos))
	}
	return out
}

type kv struct{ K, V string }

func (s *Server) redact(m map[string]string) []kv {
	var out []kv
	for k, v := range m {
		if !s.opts.ShowSecrets {
			v = redact.String(k, v)
		}
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

func (s *Server) crash(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "bad crash id", http.StatusBadRequest)
		return
	}
	c, err := s.opts.Store.Crash(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	if !s.opts.ShowSecrets {
		// Rows written by a watcher with --show-secrets, or before
		// redaction was everywhere, are redacted when shown.
		c = redact.Value(c)
	}
	p := crashPage{Title: fmt.Sprintf("Crash #%d: %s pid %d", c.ID, c.SignalName, c.PID), Crash: c, Report: c.Report}
	if rep := c.Report; rep != nil {
		if th := rep.CrashedThread(); th != nil {
			p.Thread = th
			p.Native = foldedRows(render.Fold(len(th.Frames), render.FrameNumber(th.Frames), th.Cycles), len(th.Frames), func(pos int) stackRow {
				r := stackRow{Native: &th.Frames[pos]}
				if f := r.Native; f.Function == "" && f.FunctionSource == "eh-frame" {
					r.Unnamed = fmt.Sprintf("%s+%s", render.UnnamedFunction(f), f.FunctionOffset)
				}
				if pf := render.PHPFrameOf(rep, r.Native); pf != nil {
					r.RunsPHP = render.PHPLocation(pf)
				}
				return r
			})
		}
		if php := rep.PHP; php != nil {
			p.PHP = foldedRows(render.Fold(len(php.Frames), nil, php.Cycles), len(php.Frames), func(pos int) stackRow {
				return stackRow{PHP: &php.Frames[pos], Number: pos}
			})
			p.INI = s.redact(php.INI)
			if php.Request != nil {
				req := *php.Request
				p.Request = &req
				p.Params = s.redact(req.Params)
			}
		}
	}
	s.render(w, "crash", p)
}
