<?php

final class Cart
{
    public function __construct(private string $items)
    {
    }

    public function total(): int
    {
        // A NULL char* from a broken native binding: strlen(NULL).
        lab_truth(); return lab_libc()->strlen(null) + strlen($this->items);
    }
}
