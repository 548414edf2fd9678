<?php
// A PHP program that records its own stack with debug_backtrace() and then
// dies of SIGSEGV on the same line (see cli_test.go).
require __DIR__ . '/lib.php';

class Shop
{
    public function show($id, $label)
    {
        return self::render([$id, $id + 1], $label);
    }

    public static function render(array $ids, $label)
    {
        return array_map(function ($id) use ($label) {
            return include __DIR__ . '/view.php';
        }, $ids)[0];
    }
}

if (getenv('CORONER_DEPTH')) {
    shortcode(str_repeat('[x]', 1));
}
echo (new Shop())->show(7, str_repeat('label ', 10)), "\n";
