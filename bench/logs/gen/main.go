// Command gen writes a realistic mixed log set for benchmarking `coroner
// logs`: an nginx access log (most of the bytes), an nginx error log, a
// PHP-FPM master log and a syslog-style kern.log, mostly ordinary lines
// with a few hundred worker crashes whose lines agree across the files
// (same pid, time, URI).
//
//	go run ./bench/logs/gen -dir DIR -size 1024 -crashes 300
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"path/filepath"
	"time"
)

func main() {
	dir := flag.String("dir", "", "output directory")
	sizeMB := flag.Int("size", 1024, "approximate total size in MiB")
	crashes := flag.Int("crashes", 300, "number of worker crashes")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	g := &gen{r: rand.New(rand.NewSource(42)), start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
	total := int64(*sizeMB) << 20
	// Byte budget per file: access 70%, kern/syslog 15%, error 10%, FPM 5%.
	g.access = g.open(*dir, "access.log", total*70/100)
	g.kern = g.open(*dir, "kern.log", total*15/100)
	g.errl = g.open(*dir, "error.log", total*10/100)
	g.fpm = g.open(*dir, "php8.2-fpm.log", total*5/100)
	files := []*out{g.access, g.kern, g.errl, g.fpm}
	// Spread the crashes over the time span; write ordinary lines until each
	// file reaches the byte share it would have at that time.
	span := 7 * 24 * time.Hour
	crashAt := make([]time.Duration, *crashes)
	for i := range crashAt {
		crashAt[i] = time.Duration(g.r.Int63n(int64(span)))
	}
	sortDur(crashAt)
	next := 0
	const steps = 20000
	for s := 1; s <= steps; s++ {
		now := span / steps * time.Duration(s)
		for _, f := range files {
			f.fill(g, float64(s)/steps, g.start.Add(now))
		}
		for next < len(crashAt) && (crashAt[next] <= now || s == steps) {
			g.crash(g.start.Add(crashAt[next]), next)
			next++
		}
	}
	for _, f := range files {
		if err := f.w.Flush(); err != nil {
			log.Fatal(err)
		}
		f.f.Close()
	}
	fmt.Printf("wrote %d crashes to %s\n", *crashes, *dir)
}

type out struct {
	f       *os.File
	w       *bufio.Writer
	budget  int64
	written int64
	kind    string
}

type gen struct {
	r                       *rand.Rand
	start                   time.Time
	access, kern, errl, fpm *out
	pid                     int
}

func (g *gen) open(dir, name string, budget int64) *out {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		log.Fatal(err)
	}
	return &out{f: f, w: bufio.NewWriterSize(f, 1<<20), budget: budget, kind: name}
}

func (o *out) line(s string) {
	o.w.WriteString(s)
	o.w.WriteByte('\n')
	o.written += int64(len(s) + 1)
}

var paths = []string{"/", "/index.php", "/blog/", "/blog/post-%d", "/shop/item/%d", "/api/v1/items?page=%d", "/static/app.%d.js", "/img/%d.png", "/search?q=term%d", "/teachers/profile-%d/"}
var agents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
	"curl/7.88.1", "Googlebot/2.1 (+http://www.google.com/bot.html)",
}

func (g *gen) ip() string {
	return fmt.Sprintf("%d.%d.%d.%d", 1+g.r.Intn(223), g.r.Intn(256), g.r.Intn(256), 1+g.r.Intn(254))
}

func (g *gen) path() string {
	p := paths[g.r.Intn(len(paths))]
	if containsVerb(p) {
		return fmt.Sprintf(p, g.r.Intn(5000))
	}
	return p
}

func containsVerb(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 'd' {
			return true
		}
	}
	return false
}

func accessLine(ip string, t time.Time, method, path string, status, size int, ua string) string {
	return fmt.Sprintf(`%s - - [%s] "%s %s HTTP/1.1" %d %d "-" "%s"`, ip, t.Format("02/Jan/2006:15:04:05 -0700"), method, path, status, size, ua)
}

var okStatus = []int{200, 200, 200, 200, 200, 200, 200, 304, 301, 404, 200, 200, 200}

var errTemplates = []string{
	`%s [error] 880#880: *%d open() "/var/www/html/favicon.ico" failed (2: No such file or directory), client: %s, server: shop.example, request: "GET /favicon.ico HTTP/1.1", host: "shop.example"`,
	`%s [warn] 880#880: *%d an upstream response is buffered to a temporary file /var/cache/nginx/fastcgi_temp/1/00/0000000001 while reading upstream, client: %s, server: shop.example, request: "GET /export HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "shop.example"`,
	`%s [info] 880#880: *%d client closed connection while waiting for request, client: %s, server: 0.0.0.0:443`,
	`%s [error] 880#880: *%d limiting requests, excess: 10.520 by zone "one", client: %s, server: shop.example, request: "GET /api/v1/items HTTP/1.1", host: "shop.example"`,
	`%s [crit] 880#880: *%d SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking, client: %s, server: 0.0.0.0:443`,
	`%s [info] 880#880: *%d client timed out (110: Connection timed out) while waiting for request, client: %s, server: 0.0.0.0:443`,
	`%s [info] 880#880: *%d client sent invalid method while reading client request line, client: %s, server: shop.example, request: "\x16\x03\x01"`,
	`%s [info] 880#880: *%d recv() failed (104: Connection reset by peer) while reading client request line, client: %s, server: 0.0.0.0:443`,
	`%s [notice] 880#880: *%d "^/old/(.*)$" matches "/old/page", client: %s, server: shop.example, request: "GET /old/page HTTP/1.1", host: "shop.example"`,
	`%s [error] 880#880: *%d access forbidden by rule, client: %s, server: shop.example, request: "GET /.env HTTP/1.1", host: "shop.example"`,
}

var sysTemplates = []string{
	"%s web1 CRON[%d]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
	"%s web1 sshd[%d]: Connection closed by authenticating user root 203.0.113.9 port 51234 [preauth]",
	"%s web1 systemd[1]: Started session-%d.scope - Session of User deploy.",
	"%s web1 kernel: [%d.123456] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=198.51.100.77 DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=240 ID=54321 PROTO=TCP SPT=51234 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0",
	"%s web1 postfix/smtpd[%d]: disconnect from unknown[203.0.113.50] ehlo=1 auth=0/1 quit=1 commands=2/3",
	"%s web1 kernel: [%d.000001] TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters.",
}

var fpmTemplates = []string{
	"[%s] NOTICE: [pool www] child %d started",
	"[%s] NOTICE: [pool www] child %d started",
	"[%s] NOTICE: [pool www] child %d started",
	"[%s] NOTICE: [pool www] child %d exited with code 0 after 3600.104512 seconds from start",
	"[%s] WARNING: [pool www] child %d said into stderr: \"NOTICE: PHP message: PHP Warning:  Undefined array key \"id\" in /var/www/html/app.php on line 12\"",
	"[%s] NOTICE: [pool www] child %d started",
}

// fill writes ordinary lines until the file has frac of its budget.
func (o *out) fill(g *gen, frac float64, t time.Time) {
	target := int64(float64(o.budget) * frac)
	for o.written < target {
		ts := t.Add(-time.Duration(g.r.Intn(3000)) * time.Millisecond)
		switch o.kind {
		case "access.log":
			o.line(accessLine(g.ip(), ts, "GET", g.path(), okStatus[g.r.Intn(len(okStatus))], 200+g.r.Intn(90000), agents[g.r.Intn(len(agents))]))
		case "error.log":
			o.line(fmt.Sprintf(errTemplates[g.r.Intn(len(errTemplates))], ts.Format("2006/01/02 15:04:05"), g.r.Intn(1e7), g.ip()))
		case "kern.log":
			o.line(fmt.Sprintf(sysTemplates[g.r.Intn(len(sysTemplates))], ts.Format("Jan _2 15:04:05"), 1000+g.r.Intn(60000)))
		case "php8.2-fpm.log":
			o.line(fmt.Sprintf(fpmTemplates[g.r.Intn(len(fpmTemplates))], ts.Format("02-Jan-2006 15:04:05"), 1000+g.r.Intn(60000)))
		}
	}
}

var crashURIs = []string{"/search?q=%C3%A9t%C3%A9", "/teachers/profile-sarah/", "/blog/post-17", "/api/v1/report?year=2026"}

// crash writes the lines of one worker crash to every file.
func (g *gen) crash(t time.Time, i int) {
	g.pid = 100000 + i
	uri := crashURIs[g.r.Intn(len(crashURIs))]
	ip := g.ip()
	g.fpm.line(fmt.Sprintf("[%s] WARNING: [pool www] child %d exited on signal 11 (SIGSEGV - core dumped) after %.6f seconds from start",
		t.Format("02-Jan-2006 15:04:05"), g.pid, g.r.Float64()*100))
	g.fpm.line(fmt.Sprintf("[%s] NOTICE: [pool www] child %d started", t.Format("02-Jan-2006 15:04:05"), g.pid+50000))
	site := "libpcre2-8.so.0.11.2[51fe1,7f955ded2000+6b000]"
	if i%3 == 1 {
		site = ""
	}
	line := fmt.Sprintf("%s web1 kernel: [%d.%06d] php-fpm8.2[%d]: segfault at 20 ip 00007f955df21fe1 sp 00007ffdbf020490 error 4",
		t.Format("Jan _2 15:04:05"), int(t.Sub(g.start).Seconds())+100, g.r.Intn(1e6), g.pid)
	if site != "" {
		line += " in " + site
	}
	g.kern.line(line + " likely on CPU 1 (core 1, socket 0)")
	g.errl.line(fmt.Sprintf(`%s [error] 881#881: *%d recv() failed (104: Connection reset by peer) while reading response header from upstream, client: %s, server: shop.example, request: "GET %s HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "shop.example"`,
		t.Format("2006/01/02 15:04:05"), g.r.Intn(1e7), ip, uri))
	g.access.line(accessLine(ip, t, "GET", uri, 502, 157, agents[0]))
}

func sortDur(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}
