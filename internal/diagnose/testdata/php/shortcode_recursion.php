<?php
// Unbounded recursion through preg_replace_callback: before PHP 8.3 the C
// stack runs out and the process dies of SIGSEGV.
function do_shortcode(int $n): string
{
    return preg_replace_callback('/a/', function (array $m) use ($n): string {
        return $n > 0 ? do_shortcode($n - 1) : 'b';
    }, 'a');
}
echo do_shortcode(10000000), "\n";
