package logs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// FollowOptions tune Follow.
type FollowOptions struct {
	// Poll is how often files are checked for new data (default 500ms).
	Poll time.Duration
	// Grace is how long to wait after a worker death for the related lines
	// of the other logs before reporting it (default 3s).
	Grace time.Duration
	// Window is how much history is kept for correlation (default 15m).
	Window time.Duration
	// FromStart reads the files from the beginning instead of their end.
	FromStart bool
	// Cores, when set, lists the cores to link incidents with; it is
	// called each time incidents are about to be reported (a core is
	// written after the crash), instead of using Options.Cores.
	Cores func() []*coredumps.Entry
}

type followLine struct {
	input int
	line  []byte
	n     int64
}

// Follow watches the inputs like `tail -F` (surviving rotation and
// truncation) and calls emit for every new incident, once its related lines
// had Grace to arrive. It returns when ctx is done.
func Follow(ctx context.Context, opts Options, fo FollowOptions, emit func(*Incident)) error {
	if fo.Poll <= 0 {
		fo.Poll = 500 * time.Millisecond
	}
	if fo.Grace <= 0 {
		fo.Grace = 3 * time.Second
	}
	if fo.Window <= 0 {
		fo.Window = 15 * time.Minute
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.LibDirs == nil {
		opts.LibDirs = DefaultLibDirs
	}
	opts.Inputs = append([]Input(nil), opts.Inputs...)
	lines := make(chan followLine, 1024)
	parsers := make([]*lineParser, len(opts.Inputs))
	forensic := make([]*forensicParser, len(opts.Inputs))
	for i, in := range opts.Inputs {
		if in.Format == "" || in.Format == FormatAuto {
			opts.Inputs[i].Format = formatFromName(in.Path) // no sniffing on a live tail
		}
		parsers[i] = newLineParser(opts.Location, time.Now())
		forensic[i] = newForensicParser()
		if strings.HasPrefix(in.Path, "cmd:") {
			go followCommand(ctx, i, followCmd(in.Path), lines)
		} else {
			go followFile(ctx, i, in.Path, fo, lines)
		}
	}
	var window []Event
	emitted := map[string]bool{}
	var pendingUntil time.Time
	tick := time.NewTicker(fo.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case fl := <-lines:
			in := opts.Inputs[fl.input]
			if in.Format == FormatSlowlog {
				sp := parsers[fl.input].slow
				sp.line(fl.line, in.Path, fl.n)
				if len(sp.done) > 0 {
					window = append(window, sp.done...)
					sp.done = sp.done[:0]
				}
				continue
			}
			if in.Format == FormatApacheForensic {
				forensic[fl.input].line(fl.line, in.Path, fl.n)
				continue
			}
			if l, ok := unwrapLine(fl.line); ok {
				fl.line = l // a container's log: the line it wrote
			}
			if !containsAny(fl.line, keywords(in.Format)) {
				continue
			}
			ev, ok := parsers[fl.input].parse(fl.line)
			if !ok {
				continue
			}
			ev.File, ev.Line = in.Path, fl.n
			window = append(window, ev)
			if ev.Kind == KindChildSignal || ev.Kind == KindSegfault || ev.Kind == KindGPF || ev.Kind == KindTrap ||
				ev.Kind == KindCoredump || ev.Kind == KindApacheChild {
				pendingUntil = time.Now().Add(fo.Grace)
			}
		case now := <-tick.C:
			if pendingUntil.IsZero() || now.Before(pendingUntil) {
				continue
			}
			pendingUntil = time.Time{}
			evs := append([]Event(nil), window...)
			for _, fp := range forensic {
				evs = append(evs, fp.unfinished()...) // the requests still open now
			}
			resolveUptimes(evs, opts.BootTime)
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
			for i := range evs {
				if evs[i].Fault != nil {
					SymbolizeFault(evs[i].Fault, evs[i].Time, opts.Symbolizer, opts.LibDirs)
				}
			}
			cores := opts.Cores
			if fo.Cores != nil {
				cores = fo.Cores()
			}
			incs, _ := correlate(evs, cores, opts.ModPHP)
			for _, inc := range incs {
				if !inc.PHP && !opts.AllProcesses {
					continue
				}
				a := inc.Links[0]
				key := fmt.Sprintf("%s:%d:%d:%d", a.File, a.Line, inc.PID, a.Time.UnixNano())
				if !emitted[key] {
					emitted[key] = true
					emit(inc)
				}
			}
			cut := now.Add(-fo.Window)
			k := 0
			for _, e := range window {
				if e.Time.IsZero() || e.Time.After(cut) {
					window[k] = e
					k++
				}
			}
			window = window[:k]
		}
	}
}

func containsAny(b []byte, kws [][]byte) bool {
	if kws == nil {
		return true
	}
	for _, k := range kws {
		if bytes.Contains(b, k) {
			return true
		}
	}
	return false
}

// followCmd turns a discovery command into its streaming form.
func followCmd(path string) []string {
	args := strings.Fields(strings.TrimPrefix(path, "cmd:"))
	if len(args) == 0 {
		return nil
	}
	switch args[0] {
	case "dmesg":
		return []string{"dmesg", "-W"} // new messages only
	case "journalctl":
		return append(args, "-f", "-n", "0")
	}
	return args
}

func followCommand(ctx context.Context, idx int, args []string, out chan<- followLine) {
	if len(args) == 0 {
		return
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return
	}
	if err := cmd.Start(); err != nil {
		return
	}
	defer func() { _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), maxJournalLine)
	var n int64
	for sc.Scan() {
		n++
		select {
		case out <- followLine{idx, append([]byte(nil), sc.Bytes()...), n}:
		case <-ctx.Done():
			return
		}
	}
}

// followFile tails one file, reopening it when it is rotated (new inode) or
// truncated.
func followFile(ctx context.Context, idx int, path string, fo FollowOptions, out chan<- followLine) {
	var f *os.File
	var ino uint64
	var off int64
	var lineNo int64
	var partial []byte
	first := true
	buf := make([]byte, 256<<10)
	t := time.NewTicker(fo.Poll)
	defer t.Stop()
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		fi, err := os.Stat(path)
		if err == nil {
			st, _ := fi.Sys().(*syscall.Stat_t)
			var cur uint64
			if st != nil {
				cur = st.Ino
			}
			if f == nil || cur != ino || fi.Size() < off {
				if f != nil {
					f.Close()
				}
				f, err = regular.Open(path)
				if err == nil {
					ino, off, lineNo, partial = cur, 0, 0, nil
					if first && !fo.FromStart {
						off = fi.Size() // line numbers then count from here
					}
					if _, err := f.Seek(off, io.SeekStart); err != nil {
						f.Close()
						f = nil
					}
				} else {
					f = nil
				}
				first = false
			}
			for f != nil {
				n, err := f.Read(buf)
				if n > 0 {
					off += int64(n)
					data := append(partial, buf[:n]...)
					for {
						e := bytes.IndexByte(data, '\n')
						if e < 0 {
							break
						}
						lineNo++
						select {
						case out <- followLine{idx, append([]byte(nil), data[:e]...), lineNo}:
						case <-ctx.Done():
							return
						}
						data = data[e+1:]
					}
					if len(data) > chunkSize {
						data = data[:0]
					}
					partial = append(partial[:0], data...)
				}
				if err != nil || n == 0 {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
