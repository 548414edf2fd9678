package analyze

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
	"github.com/coroner-dev/coroner/internal/source/roots"
)

// fileSetter is a Target whose mapped files can be pointed at files of
// this host (elfcore.File.SetFiles).
type fileSetter interface {
	SetFiles(map[string]string)
}

// discoverOptions is where roots.Discover looks (a test points it at a
// runtime's layout made below a temporary directory).
var discoverOptions = roots.Options{Layers: true}

// mappedObject is one mapped ELF object of the process, as the core
// records it.
type mappedObject struct {
	path    string
	start   uint64
	buildID string // from the core's dumped ELF headers, "" when not dumped
}

// resolution is which file of this host stands for each mapped object.
type resolution struct {
	root      roots.Root        // the root used ("" Dir: this host or --sysroot)
	found     bool              // the executable was found with its build-id
	files     map[string]string // path -> file here ("" none with the build-id)
	fileIDs   map[string]string // path -> build-id of the file at the path in root, when it differs
	elsewhere map[string]string // path -> where a file with the right build-id was found outside root
	missing   []string          // objects with no file of their build-id
	// debugOnly are the objects found nowhere whose separate debug file
	// was found: their symbols come from it, nothing else.
	debugOnly map[string]string
	upgrade   bool // the mismatches look like an upgrade (same root, few)
	searched  int  // roots whose executable was compared
}

// mappedObjects lists the ELF objects of the process with the build-ids
// the core records for them.
func (a *analysis) mappedObjects() []mappedObject {
	var out []mappedObject
	seen := map[string]int{}
	for _, m := range a.core.Mappings() {
		if !isObjectPath(m.Path) {
			continue
		}
		if i, ok := seen[m.Path]; ok {
			if m.Start < out[i].start {
				out[i].start = m.Start
			}
			continue
		}
		if len(out) == elfcore.MaxObjects {
			continue // loadModules reads no more either
		}
		seen[m.Path] = len(out)
		out = append(out, mappedObject{path: m.Path, start: m.Start})
	}
	for i := range out {
		out[i].buildID = a.coreBuildIDAt(out[i].start)
	}
	return out
}

// fileBuildID returns the build-id of the ELF file at path, "" when it has
// none, and whether it is a readable ELF file at all.
func fileBuildID(path string) (string, bool) {
	f, id, ok := openBuildID(path)
	if f != nil {
		f.Close()
	}
	return id, ok
}

// openBuildID is fileBuildID that also returns the file, open (nil when
// it is not a readable ELF file); the caller closes it.
func openBuildID(path string) (*os.File, string, bool) {
	if path == "" {
		return nil, "", false
	}
	f, err := regular.Open(path)
	if err != nil {
		return nil, "", false
	}
	// Three small reads find the PT_NOTE of an ordinary object; parsing
	// every header (elf.NewFile) cost about 6 ms on a php-fpm core.
	if id, ok := symbols.ProgramBuildID(f); ok {
		return f, id, true
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return nil, "", false
	}
	return f, symbols.ReadBuildID(ef), true
}

// checkedFile is what openBuildID found at a path.
type checkedFile struct {
	f     *os.File
	id    string
	isELF bool
}

// keepOpen keeps the file of one mapped object, opened when its build-id
// was checked, for loadModules (takeOpen): each object is opened once per
// analysis instead of twice.
func (a *analysis) keepOpen(path string, f *os.File) {
	if a.opened == nil {
		a.opened = map[string]*os.File{}
	}
	if old := a.opened[path]; old != nil {
		old.Close()
	}
	a.opened[path] = f
}

// takeOpen returns the file keepOpen kept for path (nil: none); the caller
// owns it.
func (a *analysis) takeOpen(path string) *os.File {
	f := a.opened[path]
	delete(a.opened, path)
	return f
}

// closeOpened closes the files kept open that no one took.
func (a *analysis) closeOpened() {
	for p, f := range a.opened {
		f.Close()
		delete(a.opened, p)
	}
}

// candidateRoots lists where the process's files may be, in the order they
// are tried: --sysroot (or this host), the roots given with --roots, then,
// without --sysroot, the directories above the core (a chroot's relative
// core_pattern) and the containers and chroots of this host.
func (a *analysis) candidateRoots() []roots.Root {
	var out []roots.Root
	if a.opts.Sysroot != "" {
		out = append(out, roots.Root{Dir: a.opts.Sysroot, Runtime: "sysroot"})
	} else {
		out = append(out, roots.Root{Runtime: "host"})
	}
	for _, d := range a.opts.Roots {
		out = append(out, roots.Root{Dir: d, Runtime: "given"})
	}
	if a.opts.NoAutoRoot || a.opts.Sysroot != "" {
		// --sysroot says where the files are: this host's containers
		// are not searched.
		return out
	}
	if a.corePath != "" {
		out = append(out, roots.Ancestors(a.corePath)...)
	}
	return append(out, roots.Discover(discoverOptions)...)
}

func within(r roots.Root, p string) string { return regular.Within(r.Dir, p) }

// resolveFiles decides, before any mapped object is read, which file of
// this host stands for each object the process mapped: only a file with
// the build-id the core records is used (its code bytes, symbols, CFI and
// line tables); the root of the process (a container or a chroot) is
// searched for when this host's files are not the ones that ran.
func (a *analysis) resolveFiles() {
	fs, ok := a.core.(fileSetter)
	if !ok {
		return // a live process: its files are reached through /proc
	}
	objs := a.mappedObjects()
	exe := a.core.Executable()
	var exeObj *mappedObject
	for i := range objs {
		if objs[i].path == exe {
			exeObj = &objs[i]
		}
	}
	res := resolution{files: map[string]string{}, fileIDs: map[string]string{}, elsewhere: map[string]string{}, debugOnly: map[string]string{}}
	hostPath := func(r roots.Root, p string) string {
		if r.Runtime == "host" || r.Runtime == "sysroot" {
			return a.core.HostPath(p) // --exe applies
		}
		return within(r, p)
	}

	// The executable's build-id is checked in the first root before the
	// loop below checks every object there: each file is opened and its
	// build-id read once (php-fpm was opened three times).
	checked := map[string]checkedFile{}
	defer func() {
		for _, c := range checked {
			if c.f != nil {
				c.f.Close()
			}
		}
	}()
	exeBuildID := func(p string) string {
		c, ok := checked[p]
		if !ok {
			c.f, c.id, c.isELF = openBuildID(p)
			checked[p] = c
		}
		return c.id
	}

	var cands []roots.Root
	first := roots.Root{Runtime: "host"}
	if a.opts.Sysroot != "" {
		first = roots.Root{Dir: a.opts.Sysroot, Runtime: "sysroot"}
	}
	res.root = first
	switch {
	case a.opts.Container != "":
		var all []roots.Root
		for _, d := range a.opts.Roots {
			all = append(all, roots.Root{Dir: d, Runtime: "given"})
		}
		all = append(all, roots.Discover(discoverOptions)...)
		if r, ok := roots.Match(all, a.opts.Container); ok {
			res.root = r
			cands = []roots.Root{r}
		} else {
			a.warn("no container, machine or root named %q was found on this host (--container): the files of %s are used where their build-ids match", a.opts.Container, describeRoot(first))
			cands = []roots.Root{first}
		}
	case exeObj == nil || exeObj.buildID == "":
		// Nothing to match a root with: the host (or --sysroot) it is.
		cands = []roots.Root{first}
	default:
		cands = []roots.Root{first}
		if exeBuildID(hostPath(first, exe)) != exeObj.buildID {
			cands = a.candidateRoots()
		}
	}
	for _, r := range cands {
		if exeObj == nil || exeObj.buildID == "" {
			break
		}
		res.searched++
		if exeBuildID(hostPath(r, exe)) == exeObj.buildID {
			res.root, res.found = r, true
			break
		}
	}
	if exeObj != nil && exeObj.buildID == "" {
		res.found = true // not verifiable: trusted as before
	}

	mismatched, verified := 0, 0
	var unresolved []mappedObject // no file here with the build-id the process ran
	for _, o := range objs {
		p := hostPath(res.root, o.path)
		if o.buildID == "" {
			res.files[o.path] = p // nothing to check it against
			continue
		}
		verified++
		c, ok := checked[p]
		if ok {
			delete(checked, p) // this loop owns (keeps or closes) the file
		} else {
			c.f, c.id, c.isELF = openBuildID(p)
		}
		f, id, isELF := c.f, c.id, c.isELF
		if isELF && id == o.buildID {
			res.files[o.path] = p
			a.keepOpen(p, f)
			continue
		}
		if f != nil {
			f.Close()
		}
		if isELF && id != "" {
			res.fileIDs[o.path] = id
			mismatched++
		}
		if a.opts.Budget.Err() != nil {
			// The budget is used up: no more searching.
			res.files[o.path] = ""
			res.missing = append(res.missing, o.path)
			continue
		}
		if alt := a.findByBuildID(o, cands, res.root); alt != "" {
			res.files[o.path] = alt
			res.elsewhere[o.path] = alt
			continue
		}
		res.files[o.path] = ""
		unresolved = append(unresolved, o)
	}
	fetched := a.fetchExecutables(unresolved)
	for _, o := range unresolved {
		if p := fetched[o.path]; p != "" {
			res.files[o.path] = p
			res.elsewhere[o.path] = p
			continue
		}
		if d := a.findDebugFile(o, res.root); d != "" {
			res.debugOnly[o.path] = d
			continue
		}
		res.missing = append(res.missing, o.path)
	}
	// An upgrade under a running process replaces a few files at the same
	// paths of the root the executable still matches; another root (a
	// container's, a chroot's) makes the executable missing or most
	// objects differ.
	res.upgrade = res.found && mismatched*2 <= verified
	fs.SetFiles(res.files)
	a.res = res
	a.reportRoot()
}

// findByBuildID looks for a file with o's build-id outside the root in
// use: at the same path in the other candidate roots, then in the
// .build-id trees of the debug directories, which some distributions fill
// with links to the objects themselves (not only .debug files).
func (a *analysis) findByBuildID(o mappedObject, cands []roots.Root, used roots.Root) string {
	for _, r := range cands {
		if r == used {
			continue
		}
		p := within(r, o.path)
		if r.Runtime == "host" {
			p = o.path
		}
		if id, _ := fileBuildID(p); id == o.buildID {
			return p
		}
	}
	if len(o.buildID) < 3 {
		return ""
	}
	link := filepath.Join("/usr/lib/debug/.build-id", o.buildID[:2], o.buildID[2:])
	for _, r := range []roots.Root{used, {Runtime: "host"}} {
		p := within(r, link)
		if r.Runtime == "host" && a.opts.NoHostDebugFiles {
			continue
		}
		if id, ok := fileBuildID(p); ok && id == o.buildID && hasCode(p) {
			return p
		}
	}
	return ""
}

// findDebugFile looks for the separate debug file of o by its build-id:
// in --debug-dir, then below the root in use, then on this host.
func (a *analysis) findDebugFile(o mappedObject, used roots.Root) string {
	if len(o.buildID) < 3 {
		return ""
	}
	rel := filepath.Join(".build-id", o.buildID[:2], o.buildID[2:]+".debug")
	var cands []string
	for _, d := range a.opts.DebugDirs {
		cands = append(cands, filepath.Join(d, rel))
	}
	if used.Dir != "" {
		cands = append(cands, within(used, filepath.Join("/usr/lib/debug", rel)))
	}
	if used.Dir == "" || !a.opts.NoHostDebugFiles {
		cands = append(cands, filepath.Join("/usr/lib/debug", rel))
	}
	for _, c := range cands {
		if id, ok := fileBuildID(c); ok && id == o.buildID {
			return c
		}
	}
	return ""
}

// hasCode reports whether an ELF file holds its executable code (a
// separate debug file has its .text as NOBITS).
func hasCode(path string) bool {
	ef, err := regular.OpenELF(path)
	if err != nil {
		return false
	}
	defer ef.Close()
	s := ef.Section(".text")
	return s == nil || s.Type != 8 // SHT_NOBITS
}

// reportRoot records the root used and says once what could not be found.
func (a *analysis) reportRoot() {
	res := &a.res
	r := res.root
	if r.Runtime != "host" && r.Runtime != "sysroot" {
		a.report.Root = &crash.Root{Dir: r.Dir, Runtime: r.Runtime, Name: r.Name, ID: r.ID, Image: r.Image, Pod: r.Pod, Namespace: r.Namespace}
	}
	if len(res.debugOnly) > 0 {
		names := make([]string, 0, len(res.debugOnly))
		for p := range res.debugOnly {
			names = append(names, filepath.Base(p))
		}
		sort.Strings(names)
		a.warn("no file with the build-id the process ran was found for %s: their symbols come from their separate debug files alone (their code and unwind tables are not available)", strings.Join(names, ", "))
	}
	if len(res.missing) == 0 {
		return
	}
	if a.report.Root == nil {
		a.report.Root = &crash.Root{Dir: r.Dir, Runtime: r.Runtime}
	}
	a.report.Root.Unresolved = append([]string(nil), res.missing...)
	names := make([]string, 0, len(res.missing))
	for _, p := range res.missing {
		names = append(names, filepath.Base(p))
	}
	sort.Strings(names)
	shown := names
	if len(shown) > 8 {
		shown = append(append([]string(nil), shown[:8]...), fmt.Sprintf("and %d more", len(names)-8))
	}
	where := "in " + describeRoot(r)
	if r.Runtime == "host" {
		where = "on this host"
	}
	if !res.upgrade {
		searched := "no other root was searched"
		if n := res.searched - 1; n > 0 {
			searched = fmt.Sprintf("none of the %d other roots searched (--roots, containers and chroots of this host) has them", n)
		}
		a.warn("the report is partial: %d of the objects the process mapped are not %s with the build-ids the process ran (%s), and %s: the process ran in another root (a container, a chroot or another machine). Their code, symbols and unwind tables are not used, so frames in them are named by address only. Give the process's root with --sysroot DIR (or --roots DIR, --container NAME), or the files with their build-ids below a debug directory (--debug-dir), or a debuginfod server that has them (--debuginfod URL)",
			len(res.missing), where, strings.Join(shown, ", "), searched)
		return
	}
	a.warn("%d of the objects the process mapped have another build-id %s than the process ran (%s): replaced after it started; their code, symbols and unwind tables are not used (frames in them are named by address only)",
		len(res.missing), where, strings.Join(shown, ", "))
}

// describeRoot names a root in a sentence.
func describeRoot(r roots.Root) string {
	switch r.Runtime {
	case "host":
		return "this host"
	case "sysroot":
		return "the sysroot " + r.Dir
	}
	return "the " + r.String()
}
