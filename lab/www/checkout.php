<?php
// Scenario method-closure-include: a POSTed checkout whose included
// bootstrap runs a closure that calls a method that crashes natively.
require __DIR__ . '/app/truth.php';
require __DIR__ . '/app/ffi.php';
require __DIR__ . '/app/checkout/cart.php';

$cart = new Cart($_POST['items'] ?? '');
require __DIR__ . '/app/checkout/bootstrap.php';
