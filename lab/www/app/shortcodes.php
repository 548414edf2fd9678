<?php
// WordPress-style shortcodes: [tag attr="value"] expanded by callbacks
// through preg_replace_callback. A callback's output may contain shortcodes
// again, which are expanded recursively.

final class Shortcodes
{
    /** @var array<string, callable> */
    private static array $tags = [];

    public static function add(string $tag, callable $callback): void
    {
        self::$tags[$tag] = $callback;
    }

    public static function render(string $content): string
    {
        return preg_replace_callback('/\[(\w+)((?:\s+\w+="[^"]*")*)\s*\]/', function (array $m): string {
            return self::call($m[1], self::attributes($m[2]));
        }, $content);
    }

    private static function call(string $tag, array $attributes): string
    {
        $callback = self::$tags[$tag] ?? null;
        return $callback === null ? '' : $callback($attributes);
    }

    private static function attributes(string $text): array
    {
        preg_match_all('/(\w+)="([^"]*)"/', $text, $pairs, PREG_SET_ORDER);
        $out = [];
        foreach ($pairs as $p) {
            $out[$p[1]] = $p[2];
        }
        return $out;
    }
}

function do_shortcode(string $content): string
{
    return Shortcodes::render($content);
}
