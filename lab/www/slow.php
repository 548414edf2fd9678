<?php
// A slow request that ends by itself (lab/run.sh --hang; tests snapshot the
// worker while it sleeps and check that the request still completes).
require __DIR__ . '/app/truth.php';

function slow_wait(int $secs): string
{
    lab_truth(); sleep($secs);
    return "done after $secs s\n";
}

echo slow_wait((int) ($_GET['secs'] ?? 3));
