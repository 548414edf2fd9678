<?php
// Scenario kill-segv: the worker sends itself SIGSEGV (no memory fault).
require __DIR__ . '/app/truth.php';

function handle_request(string $mode): void
{
    if ($mode === 'kill') {
        lab_truth(); posix_kill(getmypid(), 11);
    }
}

handle_request($_GET['mode'] ?? '');
echo 'survived';
