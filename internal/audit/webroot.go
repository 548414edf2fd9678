package audit

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
)

// Document roots matter for a relative core_pattern: PHP-FPM runs a
// request with the script's directory as its current directory, so that
// is where the kernel writes "core".

var (
	nginxRootRe    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*root\s+("[^"]*"|'[^']*'|[^;\s]+)\s*;`) })
	nginxIncludeRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*include\s+("[^"]*"|'[^']*'|[^;\s]+)\s*;`) })
	apacheRootRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^\s*DocumentRoot\s+("[^"]*"|\S+)`) })
	apacheIncRe    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^\s*Include(?:Optional)?\s+("[^"]*"|\S+)`) })
)

// webRoots returns the document roots of the web servers' configuration:
// nginx (nginx.conf and what it includes) and Apache (apache2.conf /
// httpd.conf and their includes). nginxConfig, when set, replaces the
// default nginx.conf. Variables ($var) are skipped.
func webRoots(h *host, nginxConfig string, warn func(string)) []Evidence {
	var out []Evidence
	seen := map[string]bool{}
	var walk func(file, base string, rootRe, incRe *regexp.Regexp, depth int)
	walk = func(file, base string, rootRe, incRe *regexp.Regexp, depth int) {
		if seen[file] || depth > maxIncludeDepth || len(seen) > maxFPMFiles {
			return
		}
		seen[file] = true
		data, err := h.readFile(file)
		if err != nil && data == nil {
			if depth > 0 || nginxConfig != "" {
				warn("web server configuration: " + err.Error())
			}
			return
		}
		for i, line := range strings.Split(string(data), "\n") {
			if j := strings.IndexByte(line, '#'); j >= 0 {
				line = line[:j]
			}
			if m := rootRe.FindStringSubmatch(line); m != nil {
				v := strings.Trim(m[1], `"'`)
				if strings.Contains(v, "$") || !strings.HasPrefix(v, "/") {
					continue
				}
				out = append(out, Evidence{File: file, Line: i + 1, Text: strings.TrimSpace(line)})
				continue
			}
			if m := incRe.FindStringSubmatch(line); m != nil {
				pat := strings.Trim(m[1], `"'`)
				if !strings.HasPrefix(pat, "/") {
					pat = path.Join(base, pat)
				}
				for _, f := range h.glob(pat) {
					if h.isDir(f) {
						for _, g := range h.glob(path.Join(f, "*.conf")) {
							walk(g, base, rootRe, incRe, depth+1)
						}
						continue
					}
					walk(f, base, rootRe, incRe, depth+1)
				}
			}
		}
	}
	if nginxConfig != "" {
		walk(nginxConfig, path.Dir(nginxConfig), nginxRootRe(), nginxIncludeRe(), 0)
	} else {
		walk("/etc/nginx/nginx.conf", "/etc/nginx", nginxRootRe(), nginxIncludeRe(), 0)
		walk("/etc/apache2/apache2.conf", "/etc/apache2", apacheRootRe(), apacheIncRe(), 0)
		walk("/etc/httpd/conf/httpd.conf", "/etc/httpd", apacheRootRe(), apacheIncRe(), 0)
	}
	// de-duplicate by directory
	var uniq []Evidence
	have := map[string]bool{}
	for _, e := range out {
		d := rootDir(e)
		if !have[d] {
			have[d] = true
			uniq = append(uniq, e)
		}
	}
	return uniq
}

// rootDir extracts the directory of a root / DocumentRoot evidence line.
func rootDir(e Evidence) string {
	if m := nginxRootRe().FindStringSubmatch(e.Text); m != nil {
		return path.Clean(strings.Trim(m[1], `"'`))
	}
	if m := apacheRootRe().FindStringSubmatch(e.Text); m != nil {
		return path.Clean(strings.Trim(m[1], `"'`))
	}
	return ""
}

// checkWebRoots judges a relative core_pattern against the document roots.
func (a *auditor) checkWebRoots(in *Installation, p *Pool, writer string) {
	if len(a.roots) == 0 {
		return
	}
	var writable, closed []string
	var ev []Evidence
	for _, e := range a.roots {
		d := rootDir(e)
		if !a.h.isDir(d) {
			continue
		}
		ok, known := canWrite(a.h, a.acc, writer, p.Group.Value, d)
		if !known {
			continue
		}
		ev = append(ev, e)
		if ok {
			writable = append(writable, d)
		} else {
			closed = append(closed, d)
		}
	}
	if len(ev) == 0 {
		return
	}
	f := Finding{Layer: LayerDisk, Check: "disk.docroot", Installation: in.Name, Pool: p.Name, Evidence: ev}
	switch {
	case len(writable) == 0:
		f.Status = StatusBlocks
		f.Message = fmt.Sprintf("with a relative core_pattern the core goes to the crashing script's directory, and %s cannot create files in any document root (%s): a crash during a request leaves no core", writer, strings.Join(closed, ", "))
		if p.Chdir.Value != "" {
			f.Message += " (a worker crashing between requests writes it in its chdir " + p.Chdir.Value + ")"
		}
		f.Fix = "point kernel.core_pattern to an absolute directory (coroner fix --capture)"
	default:
		f.Status = StatusRisky
		f.Message = fmt.Sprintf("%s can write cores into the document root %s: they would be served over HTTP to anyone who asks for /core", writer, strings.Join(writable, ", "))
		f.Fix = "point kernel.core_pattern to an absolute directory (coroner fix --capture)"
	}
	a.add(f)
}
