<?php
// Scenario deep-comments: a comment thread rendered recursively through
// array_map, where a spam bot answered its own comments 100,000 times, each
// reply one level deeper. Every level renders another comment at another
// depth: the recursion would end, but it is deeper than the worker's C
// stack (a deep but finite recursion, unlike shortcode-recursion's loop).
require __DIR__ . '/app/truth.php';
require __DIR__ . '/app/comments.php';

$thread = new CommentThread((int) ($_GET['post'] ?? 7));
echo $thread->render(1, 0);
