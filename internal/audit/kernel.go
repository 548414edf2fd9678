package audit

import (
	"path"
	"strconv"
	"strings"
)

// Core-related sysctls, with their /proc/sys files and kernel defaults.
var coreSysctls = []struct{ name, file, def string }{
	{"kernel.core_pattern", "/proc/sys/kernel/core_pattern", "core"},
	{"kernel.core_uses_pid", "/proc/sys/kernel/core_uses_pid", "0"},
	{"fs.suid_dumpable", "/proc/sys/fs/suid_dumpable", "0"},
	{"kernel.core_pipe_limit", "/proc/sys/kernel/core_pipe_limit", "0"},
}

// sysctlFiles lists the files `sysctl --system` reads, in order; a file
// name in an earlier directory hides the same name in later ones, and
// /etc/sysctl.conf comes last.
func sysctlFiles(h *host) []string {
	byName := map[string]string{}
	var names []string
	for _, d := range []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"} {
		list, err := h.listDir(d, ".conf")
		if err != nil {
			continue
		}
		for _, f := range list {
			n := path.Base(f)
			if _, ok := byName[n]; !ok {
				byName[n] = f
				names = append(names, n)
			}
		}
	}
	sortStrings(names)
	var out []string
	for _, n := range names {
		out = append(out, byName[n])
	}
	if h.exists("/etc/sysctl.conf") {
		out = append(out, "/etc/sysctl.conf")
	}
	return out
}

// readKernel reads the runtime values and the configured (boot) values.
func readKernel(h *host, warn func(string)) KernelSettings {
	var k KernelSettings
	runtime := map[string]Setting{}
	for _, s := range coreSysctls {
		v, err := h.readTrim(s.file)
		if err != nil {
			warn("kernel: " + err.Error() + "; assuming the kernel default " + strconv.Quote(s.def))
			runtime[s.name] = Setting{Value: s.def, Default: true}
			continue
		}
		runtime[s.name] = Setting{Value: strings.TrimSpace(v), Evidence: &Evidence{File: s.file, Text: strings.TrimSpace(v)}}
	}
	k.CorePattern = runtime["kernel.core_pattern"]
	k.CoreUsesPID = runtime["kernel.core_uses_pid"]
	k.SuidDumpable = runtime["fs.suid_dumpable"]
	k.CorePipeLimit = runtime["kernel.core_pipe_limit"]
	k.Configured = map[string]Setting{}
	for _, f := range sysctlFiles(h) {
		data, err := h.readFile(f)
		if err != nil {
			warn("sysctl: " + err.Error())
			if data == nil {
				continue
			}
		}
		for i, line := range strings.Split(string(data), "\n") {
			s := strings.TrimSpace(line)
			if s == "" || s[0] == '#' || s[0] == ';' {
				continue
			}
			s = strings.TrimPrefix(s, "-")
			eq := strings.IndexByte(s, '=')
			if eq < 0 {
				continue
			}
			key := strings.ReplaceAll(strings.TrimSpace(s[:eq]), "/", ".")
			val := strings.TrimSpace(s[eq+1:])
			for _, c := range coreSysctls {
				if c.name == key {
					k.Configured[key] = Setting{Value: val, Evidence: &Evidence{File: f, Line: i + 1, Text: strings.TrimSpace(line)}}
				}
			}
		}
	}
	k.Handler = handlerOf(k.CorePattern.Value)
	return k
}

// handlerOf names the pipe handler of a core_pattern.
func handlerOf(pattern string) string {
	if !strings.HasPrefix(pattern, "|") {
		return ""
	}
	prog := pipeProgram(pattern)
	switch b := path.Base(prog); {
	case b == "systemd-coredump":
		return "systemd-coredump"
	case b == "apport" || strings.Contains(prog, "apport"):
		return "apport"
	case strings.HasPrefix(b, "abrt-hook-ccpp") || strings.Contains(prog, "abrt"):
		return "abrt"
	}
	return "other"
}

// pipeProgram returns the program of a |pipe pattern.
func pipeProgram(pattern string) string {
	f := strings.Fields(strings.TrimPrefix(pattern, "|"))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
