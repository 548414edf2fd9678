<?php

final class Cart
{
    public function __construct(string $items)
    {
        $this->items = $items;
    }
    public function total(): int
    {
        // A NULL char* from a broken native binding: strlen(NULL).
        lab_truth(); return lab_libc()->strlen(null) + strlen($this->items);
    }

    // Declared down here (no constructor promotion: the lab runs on PHP 7.4 too)
    // so that the lines above stay where the ground truth of older runs has them.
    private string $items;
}
