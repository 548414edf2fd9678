<?php
// Lab health check: is the tracing JIT really on? (OPcache on, which PHP)
header('Content-Type: application/json');
$s = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
echo json_encode([
    'jit' => ini_get('opcache.jit'),
    'jit_on' => (bool) ($s['jit']['on'] ?? false),
    'jit_buffer_size' => ini_get('opcache.jit_buffer_size'),
    'pcre_jit' => ini_get('pcre.jit'),
    'ffi' => ini_get('ffi.enable'),
    'version' => PHP_VERSION,
    'opcache' => (bool) ($s['opcache_enabled'] ?? false),
    'zts' => (bool) PHP_ZTS,
]);
