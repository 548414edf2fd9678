<?php
// Included by checkout.php: computes the total through a closure.
$compute = function () use ($cart): int {
    return $cart->total();
};
echo 'total: ' . $compute();
