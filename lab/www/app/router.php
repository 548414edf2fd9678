<?php

final class Router
{
    /** @var array<string, callable> */
    private array $routes = [];

    public function get(string $pattern, callable $handler): void
    {
        $this->routes[$pattern] = $handler;
    }

    public function dispatch(string $path): string
    {
        foreach ($this->routes as $pattern => $handler) {
            if (preg_match($pattern, $path, $m)) {
                return $handler(...array_slice($m, 1));
            }
        }
        http_response_code(404);
        return 'not found';
    }
}
