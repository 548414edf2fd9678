<?php
// truth writes the stack as coroner should read it: innermost first, each
// frame the function executing with the file and line inside it.
function truth()
{
    $bt = debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS);
    $out = [];
    for ($i = 1; $i < count($bt); $i++) {
        $out[] = [
            'function' => $bt[$i]['function'],
            'class' => $bt[$i]['class'] ?? '',
            'type' => $bt[$i]['type'] ?? '',
            'file' => $bt[$i - 1]['file'] ?? '',
            'line' => $bt[$i - 1]['line'] ?? 0,
        ];
    }
    $last = end($bt);
    $out[] = ['function' => '{main}', 'class' => '', 'type' => '', 'file' => $last['file'], 'line' => $last['line']];
    file_put_contents(getenv('CORONER_TRUTH'), json_encode($out));
}

function boom($id, $opts, $ratio)
{
    truth(); posix_kill(getmypid(), 11);
}

// shortcode recurses through preg_replace_callback until the C stack overflows.
function shortcode($text)
{
    return preg_replace_callback('/\[x\]/', function ($m) use ($text) {
        return shortcode($text);
    }, $text);
}
