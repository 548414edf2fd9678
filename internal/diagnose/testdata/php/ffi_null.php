<?php
// A NULL compiled pattern passed to pcre2_jit_match through FFI: the crash
// is in libpcre2, the cause is the FFI call (the crash lab's ffi-null-code).
$ffi = FFI::cdef("int pcre2_jit_match_8(void *code, const char *subject, size_t length, size_t start, unsigned options, void *md, void *ctx);", "libpcre2-8.so.0");
function run(FFI $ffi): int
{
    return $ffi->pcre2_jit_match_8(null, "abc", 3, 0, 0, null, null);
}
echo run($ffi), "\n";
