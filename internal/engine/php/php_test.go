package php

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnalyzeZTS checks that a thread-safe build (globals in TLS, found
// through executor_globals_offset) whose code does not show how it reaches
// a thread's TSRM block is recognised and refused with that reason.
func TestAnalyzeZTS(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "zts.c")
	so := filepath.Join(dir, "libphp.so")
	writeFile(t, src, "long executor_globals_offset = 64; long sapi_globals_offset = 128;\n")
	if b, err := exec.Command(gcc, "-shared", "-fPIC", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	res, err := Analyze(Input{Memory: newFakeMem(), Modules: []Module{{Path: so, Start: 0x7f0000000000, End: 0x7f0000100000, Bias: 0x7f0000000000}}})
	if err != nil || res == nil {
		t.Fatalf("Analyze = %v, %v", res, err)
	}
	if !res.ZTS || len(res.Frames) != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "ZTS") || !strings.Contains(res.Warnings[0], "TSRM block") {
		t.Errorf("ZTS build: %+v", res)
	}
}

// TestAnalyzeNotPHP checks that a process without PHP gives (nil, nil).
func TestAnalyzeNotPHP(t *testing.T) {
	libs, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/libc.so.6")
	var mods []Module
	for _, l := range libs {
		mods = append(mods, Module{Path: l, Start: 0x7f0000000000, End: 0x7f0000200000, Bias: 0x7f0000000000})
	}
	mods = append(mods, Module{Path: "/nonexistent/php-fpm", Start: 0x400000, End: 0x500000})
	res, err := Analyze(Input{Memory: newFakeMem(), Modules: mods})
	if res != nil || err != nil {
		t.Errorf("Analyze of a non-PHP process = %+v, %v", res, err)
	}
	if _, err := Analyze(Input{}); err == nil {
		t.Error("Analyze without memory succeeded")
	}
}

func TestDecodeJIT(t *testing.T) {
	tests := []struct {
		ini    map[string]string
		sapi   string
		mode   string
		crto   string
		active bool
	}{
		{map[string]string{"opcache.jit": "tracing", "opcache.jit_buffer_size": "64M", "opcache.enable": "1"}, "fpm-fcgi", "tracing", "1254", true},
		{map[string]string{"opcache.jit": "1205", "opcache.jit_buffer_size": "64M", "opcache.enable": "1"}, "fpm-fcgi", "function", "1205", true},
		{map[string]string{"opcache.jit": "tracing", "opcache.jit_buffer_size": "0", "opcache.enable": "1"}, "fpm-fcgi", "tracing", "1254", false},
		{map[string]string{"opcache.jit": "tracing", "opcache.jit_buffer_size": "64M", "opcache.enable": "1", "opcache.enable_cli": "0"}, "cli", "tracing", "1254", false},
		{map[string]string{"opcache.jit": "disable", "opcache.jit_buffer_size": "64M", "opcache.enable": "1"}, "fpm-fcgi", "disable", "", false},
		{map[string]string{"opcache.jit": "off", "opcache.jit_buffer_size": "64M", "opcache.enable": "1"}, "fpm-fcgi", "off", "", false},
		{map[string]string{"opcache.jit": "tracing", "opcache.jit_buffer_size": "64M", "opcache.enable": "0"}, "fpm-fcgi", "tracing", "1254", false},
	}
	for _, tc := range tests {
		j := DecodeJIT(tc.ini, tc.sapi)
		if j == nil || j.Mode != tc.mode || j.CRTO != tc.crto || j.Active != tc.active || j.Description == "" {
			t.Errorf("DecodeJIT(%v, %s) = %+v, want mode %s crto %s active %v", tc.ini, tc.sapi, j, tc.mode, tc.crto, tc.active)
		}
	}
	if DecodeJIT(map[string]string{}, "cli") != nil {
		t.Error("DecodeJIT without opcache.jit is not nil")
	}
	for s, want := range map[string]int64{"64M": 64 << 20, "1g": 1 << 30, "128k": 128 << 10, "0": 0, "-1": -1, "junk": 0, "99999999999999G": 0} {
		if got := ParseSize(s); got != want {
			t.Errorf("ParseSize(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestIsSecret(t *testing.T) {
	for _, k := range []string{"HTTP_COOKIE", "HTTP_AUTHORIZATION", "PHP_AUTH_PW", "DB_PASSWORD", "HTTP_X_API_KEY"} {
		if !IsSecret(k) {
			t.Errorf("IsSecret(%s) = false", k)
		}
	}
	for _, k := range []string{"REQUEST_URI", "HTTP_HOST", "QUERY_STRING", "HTTP_USER_AGENT"} {
		if IsSecret(k) {
			t.Errorf("IsSecret(%s) = true", k)
		}
	}
}

func TestIsRequestParam(t *testing.T) {
	for _, k := range []string{"REQUEST_URI", "HTTP_HOST", "QUERY_STRING", "SCRIPT_FILENAME", "REMOTE_ADDR", "PHP_SELF"} {
		if !isRequestParam(k) {
			t.Errorf("isRequestParam(%s) = false", k)
		}
	}
	for _, k := range []string{"DATABASE_URL", "PATH", "HOME", "APP_KEY"} {
		if isRequestParam(k) {
			t.Errorf("isRequestParam(%s) = true", k)
		}
	}
}
