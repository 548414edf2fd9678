package php

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAnchorNamesComplete checks that every anchor a rule reads is in
// anchorNames, so that prefetch evaluates it with the others instead of
// late and alone.
func TestAnchorNamesComplete(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`anchorAt\("([A-Za-z0-9_]+)"\)`)
	found, names := 0, anchorNames()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			found++
			if !slices.Contains(names, m[1]) {
				t.Errorf("%s: anchor %s is read by a rule but missing from anchorNames", f, m[1])
			}
		}
	}
	if found < len(names) {
		t.Errorf("%d anchorAt calls found for %d names: the pattern no longer matches the rules' code", found, len(names))
	}
}
