package analyze

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/coroner-dev/coroner/internal/engine/debuginfod"
)

// maxFetches bounds the debug files downloaded at once.
const maxFetches = 4

// fetchDebugFiles asks the debuginfod servers (when the options name any)
// for the debug files of the modules that hold frames and have no debug
// information here, before anything is looked up in them. Failures become
// one warning per cause.
func (a *analysis) fetchDebugFiles() {
	if len(a.opts.Debuginfod) == 0 {
		return
	}
	client := &debuginfod.Client{URLs: a.opts.Debuginfod, Cache: a.cache, Timeout: a.opts.DebuginfodTimeout}
	var want []*module
	for _, m := range a.modulesWithFrames() {
		if m.obj.DebugFile() == "" && !m.obj.HasDebugInfo() && m.obj.BuildID != "" {
			want = append(want, m)
		}
	}
	var mu sync.Mutex
	failures := map[string][]string{} // cause -> modules
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxFetches)
	for _, m := range want {
		wg.Add(1)
		go func(m *module) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			path, err := client.Fetch(context.Background(), m.obj.BuildID)
			if err == nil {
				err = m.obj.UseDebugFile(path)
			}
			if err != nil {
				mu.Lock()
				failures[err.Error()] = append(failures[err.Error()], m.path)
				mu.Unlock()
				return
			}
			m.info.DebugFile = path
		}(m)
	}
	wg.Wait()
	causes := make([]string, 0, len(failures))
	for c := range failures {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	for _, c := range causes {
		mods := failures[c]
		sort.Strings(mods)
		what := mods[0]
		if len(mods) > 1 {
			what = fmt.Sprintf("%d modules (%s, ...)", len(mods), strings.Join(mods[:min(2, len(mods))], ", "))
		}
		a.warn("no debug file from debuginfod for %s: %s", what, c)
	}
}

// fetchExecutables asks the debuginfod servers (when the options name any)
// for the objects no file of this host has with the build-id the process
// ran (a core from another root), a few at a time: what they send gives
// the object's code, symbols and unwind tables, as the file would. It
// returns the paths of those found; the others stay missing, with one
// warning per cause other than "not found".
func (a *analysis) fetchExecutables(objs []mappedObject) map[string]string {
	out := map[string]string{}
	if len(a.opts.Debuginfod) == 0 || len(objs) == 0 {
		return out
	}
	client := &debuginfod.Client{URLs: a.opts.Debuginfod, Cache: a.cache, Timeout: a.opts.DebuginfodTimeout}
	var mu sync.Mutex
	failures := map[string][]string{} // cause -> objects
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxFetches)
	for _, o := range objs {
		if o.buildID == "" {
			continue
		}
		wg.Add(1)
		go func(o mappedObject) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			path, err := client.FetchExecutable(context.Background(), o.buildID)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[o.path] = path
			case !errors.Is(err, debuginfod.ErrNotFound):
				failures[err.Error()] = append(failures[err.Error()], o.path)
			}
		}(o)
	}
	wg.Wait()
	causes := make([]string, 0, len(failures))
	for c := range failures {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	for _, c := range causes {
		objs := failures[c]
		sort.Strings(objs)
		what := objs[0]
		if len(objs) > 1 {
			what = fmt.Sprintf("%d objects (%s, ...)", len(objs), strings.Join(objs[:min(2, len(objs))], ", "))
		}
		a.warn("no executable from debuginfod for %s: %s", what, c)
	}
	return out
}
