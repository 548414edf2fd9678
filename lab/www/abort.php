<?php
// Scenario abort: a native library aborts (SIGABRT), here libc abort() via FFI.
require __DIR__ . '/app/truth.php';
require __DIR__ . '/app/ffi.php';

final class ImageResizer
{
    public static function resize(string $path): void
    {
        lab_truth(); lab_libc()->abort();
    }
}

ImageResizer::resize($_GET['img'] ?? 'photo.jpg');
