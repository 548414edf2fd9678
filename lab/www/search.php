<?php
// Scenario ffi-null-code: a search that matches through PCRE2's JIT via FFI
// and passes a NULL compiled pattern: the NULL dereference at the start of
// pcre2_jit_match_8 from the incident report.
require __DIR__ . '/app/truth.php';
require __DIR__ . '/app/ffi.php';

function match_subject(FFI $pcre, string $subject): int
{
    $md = $pcre->pcre2_match_data_create_8(8, null);
    lab_truth(); return $pcre->pcre2_jit_match_8(null, $subject, strlen($subject), 0, 0, $md, null);
}

function search(string $q): string
{
    $hits = match_subject(lab_pcre(), $q);
    return "hits: $hits";
}

echo search($_GET['q'] ?? '');
