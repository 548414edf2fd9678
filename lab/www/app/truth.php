<?php
// Ground truth for coroner's tests: the PHP stack and the request exactly as
// PHP itself sees them just before the crashing call, written as JSON next
// to where the core will land. Call it on the same line as the crashing call
// so that the innermost frame's line is the crash line.

/**
 * Converts debug_backtrace() (call sites) into executing frames: frame k is
 * the function running at depth k, with the file and current line inside it.
 */
function lab_frames(array $bt): array
{
    $frames = [];
    $n = count($bt);
    for ($k = 0; $k < $n; $k++) {
        $callee = $bt[$k + 1] ?? null; // the function that contains call site $bt[$k]
        $f = [
            'function' => $callee ? $callee['function'] : '{main}',
            'class' => $callee['class'] ?? '',
            'call_type' => $callee['type'] ?? '',
            'file' => $bt[$k]['file'] ?? '',
            'line' => $bt[$k]['line'] ?? 0,
        ];
        $frames[] = $f;
    }
    return $frames;
}

function lab_truth(array $extra = [], int $skip = 0): void
{
    // $skip drops frames of helpers that call lab_truth for their caller.
    $bt = array_slice(debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS), $skip);
    $truth = array_merge([
        'frames' => lab_frames($bt),
        'outermost' => false,
        'recursion_functions' => [],
        'request_uri' => $_SERVER['REQUEST_URI'] ?? '',
        'method' => $_SERVER['REQUEST_METHOD'] ?? '',
        'query' => $_SERVER['QUERY_STRING'] ?? '',
        'script_filename' => $_SERVER['SCRIPT_FILENAME'] ?? '',
        'host' => $_SERVER['HTTP_HOST'] ?? '',
        'pid' => getmypid(),
    ], $extra);
    $dir = getenv('LAB_TRUTH_DIR') ?: (ini_get('lab.truth_dir') ?: sys_get_temp_dir());
    file_put_contents($dir . '/truth.' . getmypid() . '.json', json_encode($truth, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES));
}
