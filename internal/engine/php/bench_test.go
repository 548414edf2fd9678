package php

import "testing"

// BenchmarkAnalyzeDeepRecursion measures Analyze (globals, version, the
// whole PHP stack walk with cycle folding, INI, request, extensions) on a
// php-cli core dead of a C stack overflow in preg_replace_callback
// recursion (~20,000 PHP frames).
func BenchmarkAnalyzeDeepRecursion(b *testing.B) {
	corePath, _ := cliCore(b, "CORONER_DEPTH=1")
	benchmarkAnalyze(b, corePath)
}

func benchmarkAnalyze(b *testing.B, corePath string) {
	in := inputFromCore(b, corePath)
	b.ResetTimer()
	frames := 0
	for i := 0; i < b.N; i++ {
		res, err := Analyze(in)
		if err != nil || res == nil {
			b.Fatalf("Analyze = %v, %v", res, err)
		}
		frames = len(res.Frames)
	}
	b.ReportMetric(float64(frames), "frames")
}
