<?php
// A small WordPress-like front controller: pretty URLs are rewritten to
// this file by nginx (try_files ... /index.php?$args) or Apache (mod_rewrite), or reach it as PATH_INFO.
require __DIR__ . '/app/truth.php';
require __DIR__ . '/app/shortcodes.php';
require __DIR__ . '/app/teachers.php';
require __DIR__ . '/app/router.php';

$router = new Router();
$router->get('#^/teachers/profile-([a-z-]+)/$#', function (string $slug): string {
    return (new TeacherPage($slug))->render();
});
$router->get('#^/$#', fn (): string => '<h1>Teachers</h1>');
echo $router->dispatch(($_SERVER['PATH_INFO'] ?? '') ?: (parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?: '/'));
