package audit

import (
	"fmt"
	"path"
	"strings"

	"github.com/coroner-dev/coroner/internal/source/roots"
)

// maxNamedContainers bounds the containers a finding names.
const maxNamedContainers = 5

// checkContainers explains core capture for the containers of the host:
// kernel.core_pattern is host-wide, but a file pattern is opened in the
// crashing process's own root, so the core of a containerized worker is
// written inside its container (where it may not be kept), while a pipe
// handler runs on the host.
func (a *auditor) checkContainers() {
	opts := roots.Options{NoProcesses: true}
	if !a.h.live() {
		opts.Host = a.h.root
	}
	var found []roots.Root
	for _, r := range roots.Discover(opts) {
		if r.Runtime != "nspawn" || r.Name != "" {
			found = append(found, r)
		}
	}
	if len(found) == 0 {
		return
	}
	var names []string
	for _, r := range found {
		n := r.Name
		if n == "" {
			n = r.ID
		}
		names = append(names, r.Runtime+" "+n)
		if len(names) == maxNamedContainers {
			if more := len(found) - len(names); more > 0 {
				names = append(names, fmt.Sprintf("%d more", more))
			}
			break
		}
	}
	what := fmt.Sprintf("%d containers or machines on this host (%s)", len(found), strings.Join(names, ", "))
	if len(found) == 1 {
		what = fmt.Sprintf("a container or machine on this host (%s)", names[0])
	}
	limit := "; each container's RLIMIT_CORE must also allow cores (docker run --ulimit core=-1, the runtime's default LimitCORE for Kubernetes, lxc.prlimit.core)"
	cp := a.pattern
	f := Finding{Layer: LayerKernel, Check: "kernel.core_pattern.containers", Evidence: evs(a.r.Kernel.CorePattern)}
	switch {
	case strings.HasPrefix(cp, "|"):
		f.Status = StatusOK
		f.Message = fmt.Sprintf("%s: core_pattern is host-wide and its handler %s runs on the host, so their workers' cores reach it (coroner finds each core's container by build-id)%s", what, pipeProgram(cp), limit)
	case strings.HasPrefix(cp, "/"):
		f.Status = StatusRisky
		f.Message = fmt.Sprintf("%s: core_pattern is host-wide, but the kernel writes a containerized worker's core at %s inside the container's own root: it is kept only if %s exists there and is writable, and it goes with the container unless it is a volume%s", what, cp, path.Dir(cp), limit)
		f.Fix = "pipe cores to a handler on the host (systemd-coredump: coroner fix --capture), or mount a host directory at " + path.Dir(cp) + " in every container"
	default:
		f.Status = StatusRisky
		f.Message = fmt.Sprintf("%s: core_pattern is host-wide, and a relative pattern writes a containerized worker's core into its current directory inside the container, where it goes with the container%s", what, limit)
		f.Fix = "pipe cores to a handler on the host (systemd-coredump: coroner fix --capture)"
	}
	a.add(f)
}
