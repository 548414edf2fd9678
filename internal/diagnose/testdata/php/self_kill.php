<?php
// The process sends itself SIGSEGV: no instruction faults.
function bye(): void
{
    posix_kill(getmypid(), SIGSEGV);
}
bye();
