<?php
// The teacher directory. Its "related teachers" widget lists colleagues
// with the same subject, and each card shows its related teachers again:
// a teacher tagged as her own colleague nests cards without end, until the
// C stack of the worker overflows (PHP 8.3+ detect it unless zend.max_allowed_stack_size=-1).

final class TeacherPage
{
    public function __construct(string $slug)
    {
        $this->slug = $slug;
    }
    public function render(): string
    {
        $content = '<h1>Profile</h1>[teacher_card name="' . $this->slug . '"]';
        return do_shortcode($content);
    }

    // Declared down here (no constructor promotion: the lab runs on PHP 7.4 too)
    // so that the lines above stay where the ground truth of older runs has them.
    private string $slug;
}

function lab_truth_once(): void
{
    static $done = false;
    if (!$done) {
        $done = true;
        lab_truth([
            'outermost' => true,
            'recursion_functions' => ['do_shortcode', 'render', 'preg_replace_callback', '{closure}', 'call'],
        ], 1);
    }
}

function related_teachers(string $name): array
{
    // Misconfigured taxonomy: every teacher is listed among her own colleagues.
    return [$name];
}

Shortcodes::add('teacher_card', function (array $a): string {
    lab_truth_once(); return '<div class="card">' . htmlspecialchars($a['name']) . do_shortcode('[related_teachers of="' . $a['name'] . '"]') . '</div>';
});

Shortcodes::add('related_teachers', function (array $a): string {
    $html = '';
    foreach (related_teachers($a['of']) as $name) {
        $html .= do_shortcode('[teacher_card name="' . $name . '"]');
    }
    return '<aside>' . $html . '</aside>';
});
