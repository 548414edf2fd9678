<?php
// The hang lab's black hole: a TCP server on 127.0.0.1 that accepts every
// connection and never answers, like a database, cache or API that hangs.
// Workers that talk to it (curl, mysqli, pgsql, redis) block waiting for a
// reply. Usage: php blackhole.php PORTFILE (it writes its port there).
$server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
if (!$server) {
    fwrite(STDERR, "blackhole: $errstr\n");
    exit(1);
}
$name = stream_socket_get_name($server, false);
file_put_contents($argv[1], substr($name, strrpos($name, ':') + 1));
$clients = [];
while (true) {
    $c = @stream_socket_accept($server, -1);
    if ($c) {
        $clients[] = $c; // kept open, never read, never answered
    }
}
