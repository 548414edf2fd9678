<?php
// Hang scenarios (lab/run.sh --hang): a worker that does not die but hangs,
// the way production workers do before a 504 or "execution timed out".
// Each writes its ground truth (debug_backtrace) just before entering the
// hang, on the line of the hanging call. ?mode=NAME picks the hang; ?port=N
// is the lab's black hole (a TCP server that accepts and never answers).
require __DIR__ . '/app/truth.php';
require __DIR__ . '/app/hangs.php';

$mode = $_GET['mode'] ?? 'sleep';
$port = (int) ($_GET['port'] ?? 0);
ignore_user_abort(true);
set_time_limit(0);
echo Hangs::run($mode, $port);
