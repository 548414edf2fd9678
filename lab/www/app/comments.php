<?php
// Threaded comments: each comment lists its replies, rendered by the same
// method one level deeper.

final class CommentThread
{
    private int $post;

    public function __construct(int $post)
    {
        $this->post = $post;
    }

    /** @return int[] the replies of comment $id: the spam chain gives each one a reply */
    private function replies(int $id): array
    {
        return $id < 100000 ? [$id + 1] : [];
    }

    public function render(int $id, int $depth): string
    {
        if ($depth === 0) lab_truth(['outermost' => true, 'recursion_functions' => ['render', 'array_map', '{closure}']]); $html = implode('', array_map(fn (int $reply): string => $this->render($reply, $depth + 1), $this->replies($id)));
        return '<li id="c' . $this->post . '-' . $id . '">' . $html . '</li>';
    }
}
