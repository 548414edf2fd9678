<?php
// The hang families coroner's knowledge base knows (docs/rules.md, live rules).
final class Hangs
{
    public static function run(string $mode, int $port): string
    {
        switch ($mode) {
            case 'sleep':
                return self::nap(600);
            case 'usleep':
                return self::micronap(600);
            case 'pcre-backtrack':
                return self::backtrack(str_repeat('a', 64) . '!');
            case 'curl':
                return self::fetch("http://127.0.0.1:$port/api/prices");
            case 'mysqli':
                return self::query($port);
            case 'pgsql':
                return self::pgQuery($port);
            case 'redis':
                return self::cacheGet($port);
            case 'session-holder':
                return self::holdSession();
            case 'session-lock':
                return self::waitSession();
            case 'loop':
                return self::spin(0);
        }
        http_response_code(400);
        return "unknown mode\n";
    }

    private static function nap(int $secs): string
    {
        lab_truth(); sleep($secs);
        return "slept\n";
    }

    private static function micronap(int $secs): string
    {
        lab_truth(); usleep($secs * 1000000);
        return "slept\n";
    }

    private static function backtrack(string $subject): string
    {
        // The interpreter (pcre.jit=0) with limits high enough to let the
        // nested quantifier explore its 2^64 ways of failing.
        ini_set('pcre.jit', '0');
        ini_set('pcre.backtrack_limit', '4294967295');
        ini_set('pcre.recursion_limit', '4294967295');
        lab_truth(); $n = preg_match('/^(a+)+$/', $subject);
        return "matched $n\n";
    }

    private static function fetch(string $url): string
    {
        $ch = curl_init($url);
        curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
        curl_setopt($ch, CURLOPT_TIMEOUT, 0);
        lab_truth(); $body = curl_exec($ch);
        return (string) $body;
    }

    private static function query(int $port): string
    {
        ini_set('mysqlnd.net_read_timeout', '600');
        ini_set('default_socket_timeout', '600');
        mysqli_report(MYSQLI_REPORT_OFF);
        lab_truth(); $db = mysqli_connect('127.0.0.1', 'shop', 'secret', 'shop', $port);
        return $db ? "connected\n" : "failed\n";
    }

    private static function pgQuery(int $port): string
    {
        lab_truth(); $db = pg_connect("host=127.0.0.1 port=$port dbname=shop user=shop password=secret connect_timeout=0");
        return $db ? "connected\n" : "failed\n";
    }

    private static function cacheGet(int $port): string
    {
        $r = new Redis();
        $r->connect('127.0.0.1', $port, 0);
        $r->setOption(Redis::OPT_READ_TIMEOUT, 600);
        lab_truth(); $v = $r->get('prices');
        return "got " . var_export($v, true) . "\n";
    }

    private static function holdSession(): string
    {
        session_id('labhangsession');
        session_start();
        $_SESSION['cart'] = ['book'];
        lab_truth(); sleep(600);
        return "held\n";
    }

    private static function waitSession(): string
    {
        session_id('labhangsession');
        lab_truth(); session_start();
        return "got the session\n";
    }

    private static function spin(int $i): int|string
    {
        lab_truth(); while (true) { $i = ($i * 31 + 7) % 1000003; }
    }
}
