<?php
// FFI bindings the crash scenarios use: libpcre2-8 and libc.

function lab_pcre(): FFI
{
    return FFI::cdef(<<<'C'
        typedef struct pcre2_match_data_8 pcre2_match_data_8;
        pcre2_match_data_8 *pcre2_match_data_create_8(uint32_t ovecsize, void *gcontext);
        int pcre2_jit_match_8(const void *code, const char *subject, size_t length, size_t startoffset,
                              uint32_t options, pcre2_match_data_8 *match_data, void *mcontext);
        C, 'libpcre2-8.so.0');
}

function lab_libc(): FFI
{
    return FFI::cdef('void abort(void); size_t strlen(const char *s);', 'libc.so.6');
}
