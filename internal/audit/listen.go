package audit

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ListenSocket turns a pool's listen value into the network ("unix" or
// "tcp") and address a client on the same host connects to, as FPM reads
// the value (fpm_sockets.c): a value with a ':' is HOST:PORT ("[::1]:9000"
// with brackets for IPv6), a value of digits only is a port on every
// address, anything else is the path of a unix socket. A pool listening on
// every address ("9000", "0.0.0.0:9000", "*:9000", "[::]:9000") is reached
// on loopback (127.0.0.1, or ::1 for "[::]"). A relative path, which FPM
// resolves against its prefix, is refused: the prefix is not in the
// configuration.
func ListenSocket(listen string) (network, address string, err error) {
	v := strings.TrimSpace(listen)
	switch {
	case v == "":
		return "", "", fmt.Errorf("listen is not set (FPM refuses to start a pool without one)")
	case strings.Contains(v, ":"):
		i := strings.LastIndexByte(v, ':')
		host, port := v[:i], v[i+1:]
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
		if _, err := listenPort(port); err != nil {
			return "", "", fmt.Errorf("listen %q: %w", listen, err)
		}
		switch host {
		case "", "*", "0.0.0.0":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		}
		if strings.ContainsAny(host, " \t/[]") || strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", "", fmt.Errorf("listen %q: bad host %q", listen, host)
		}
		return "tcp", net.JoinHostPort(host, port), nil
	case strings.Trim(v, "0123456789") == "":
		if _, err := listenPort(v); err != nil {
			return "", "", fmt.Errorf("listen %q: %w", listen, err)
		}
		return "tcp", net.JoinHostPort("127.0.0.1", v), nil
	case !strings.HasPrefix(v, "/"):
		return "", "", fmt.Errorf("listen %q is a relative path, which FPM resolves against its prefix (-p, not in the configuration)", listen)
	}
	return "unix", v, nil
}

// listenPort checks a port as FPM does (1 to 65535).
func listenPort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || strings.Trim(s, "0123456789") != "" || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q (want 1 to 65535)", s)
	}
	return n, nil
}
