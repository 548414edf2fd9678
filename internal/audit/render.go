package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/coroner-dev/coroner/internal/sanitize"
)

// statusWord is how a status reads in the text report.
var statusWord = map[Status]string{
	StatusOK: "OK", StatusBlocks: "BLOCKS", StatusRisky: "RISKY", StatusPending: "PENDING", StatusInfo: "info",
}

// WriteText renders r for a terminal: one verdict per pool first, then the
// findings layer by layer with their evidence. verbose adds OK and info findings' evidence.
func (r *Report) WriteText(w io.Writer, verbose bool) error {
	r = sanitize.Copy(r) // values read from the host's files, escaped
	var b strings.Builder
	where := "this machine"
	if !r.Live {
		where = r.Root
	}
	fmt.Fprintf(&b, "coroner audit of %s\n", where)
	k := r.Kernel
	fmt.Fprintf(&b, "kernel.core_pattern = %s", k.CorePattern.Value)
	if k.Handler != "" {
		fmt.Fprintf(&b, "  (%s)", k.Handler)
	}
	fmt.Fprintf(&b, "\nfs.suid_dumpable = %s, kernel.core_uses_pid = %s, kernel.core_pipe_limit = %s\n",
		k.SuidDumpable.Value, k.CoreUsesPID.Value, k.CorePipeLimit.Value)
	if !r.Systemd {
		b.WriteString("systemd is not PID 1: unit settings apply only where systemd starts php-fpm or Apache\n")
	}
	for _, in := range r.Installations {
		fmt.Fprintf(&b, "\n== %s (PHP %s, %s layout) %s\n", in.Name, orUnknown(in.Version), in.Layout, orStr(in.FPMConfig, in.ServerConfig))
		fmt.Fprintf(&b, "   JIT: %s\n", in.JIT.Description)
		fmt.Fprintf(&b, "   opcache.jit=%s jit_buffer_size=%s pcre.jit=%s memory_limit=%s", showVal(in.INI["opcache.jit"]), showVal(in.INI["opcache.jit_buffer_size"]), showVal(in.INI["pcre.jit"]), showVal(in.INI["memory_limit"]))
		if s, ok := in.INI["zend.max_allowed_stack_size"]; ok {
			fmt.Fprintf(&b, " zend.max_allowed_stack_size=%s", showVal(s))
		}
		fmt.Fprintf(&b, "\n   expected core size ~%s\n", mib(in.ExpectedCoreSize))
		for _, p := range in.Pools {
			verdict := "cores WILL be written"
			if !p.CoresWritten {
				verdict = "cores will NOT be written"
			} else if p.Pending {
				verdict = "cores will be written after the pending reload/restart"
			}
			dest := ""
			if p.CoreDir != "" {
				dest = " -> " + p.CoreDir
			} else if k.Handler != "" {
				dest = " -> " + k.Handler
			}
			what := "pool"
			if in.isApache() {
				what = "children"
			}
			fmt.Fprintf(&b, "   %s %-12s user %-10s %s%s\n", what, p.Name, orDash(p.User.Value), verdict, dest)
		}
	}
	layers := []string{LayerKernel, LayerHandler, LayerSystemd, LayerFPM, LayerApache, LayerProcess, LayerDisk, LayerPHP}
	for _, l := range layers {
		first := true
		for _, f := range r.Findings {
			if f.Layer != l {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n[%s]\n", l)
				first = false
			}
			t := ""
			if f.Target != "" {
				t = f.Target + ": "
			}
			fmt.Fprintf(&b, "  %-7s %s%s\n", statusWord[f.Status], t, f.Message)
			if verbose || (f.Status != StatusOK && f.Status != StatusInfo) {
				for _, e := range f.Evidence {
					fmt.Fprintf(&b, "          at %s\n", e)
				}
			}
			if f.Fix != "" && f.Status != StatusOK {
				fmt.Fprintf(&b, "          fix: %s\n", f.Fix)
			}
		}
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\nwarnings:\n")
		for _, x := range r.Warnings {
			fmt.Fprintf(&b, "  %s\n", x)
		}
	}
	fmt.Fprintf(&b, "\n%d blocking, %d risky, %d pending\n", r.Count(StatusBlocks), r.Count(StatusRisky), r.Count(StatusPending))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON renders r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
