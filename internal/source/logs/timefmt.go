package logs

import (
	"sync"
	"time"
)

// The clock formats of the sources differ: nginx writes local time without a
// zone, PHP-FPM "dd-Mon-YYYY HH:MM:SS" local time, the access log carries its
// offset, syslog has no year, and raw dmesg counts seconds since boot. These
// helpers parse each from a byte slice without allocating.

// digits parses b (all ASCII digits) as a non-negative integer.
func digits(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// spaceDigits parses a number that may be left-padded with spaces ("  6").
func spaceDigits(b []byte) (int, bool) {
	for len(b) > 1 && b[0] == ' ' {
		b = b[1:]
	}
	return digits(b)
}

var monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// month parses a three-letter English month abbreviation.
func month(b []byte) (time.Month, bool) {
	if len(b) < 3 {
		return 0, false
	}
	for i, m := range monthNames {
		if b[0] == m[0] && b[1] == m[1] && b[2] == m[2] {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// hms parses "HH:MM:SS" at the start of b.
func hms(b []byte) (h, m, s int, ok bool) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := digits(b[0:2])
	m, ok2 := digits(b[3:5])
	s, ok3 := digits(b[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || s > 60 {
		return 0, 0, 0, false
	}
	return h, m, s, true
}

// fraction parses ".123456" or ",123456" at the start of b and returns the
// nanoseconds and the bytes consumed (0 when there is no fraction).
func fraction(b []byte) (ns int, n int) {
	if len(b) < 2 || (b[0] != '.' && b[0] != ',') {
		return 0, 0
	}
	i := 1
	scale := 100000000
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if scale > 0 {
			ns += int(b[i]-'0') * scale
			scale /= 10
		}
		i++
	}
	if i == 1 {
		return 0, 0
	}
	return ns, i
}

func validDate(y int, mo time.Month, d int) bool {
	return y >= 1970 && y < 3000 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31
}

// parseNginxTime parses "2026/11/26 19:27:44" (local time of the server).
func parseNginxTime(b []byte, loc *time.Location) (time.Time, bool) {
	if len(b) < 19 || b[4] != '/' || b[7] != '/' || b[10] != ' ' {
		return time.Time{}, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	h, mi, s, ok4 := hms(b[11:])
	if !ok1 || !ok2 || !ok3 || !ok4 || !validDate(y, time.Month(mo), d) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, 0, loc), true
}

// parseFPMTime parses "26-Nov-2026 19:27:44[.123456]" and returns the bytes
// consumed.
func parseFPMTime(b []byte, loc *time.Location) (time.Time, int, bool) {
	if len(b) < 20 || b[2] != '-' || b[6] != '-' || b[11] != ' ' {
		return time.Time{}, 0, false
	}
	d, ok1 := digits(b[0:2])
	mo, ok2 := month(b[3:6])
	y, ok3 := digits(b[7:11])
	h, mi, s, ok4 := hms(b[12:])
	if !ok1 || !ok2 || !ok3 || !ok4 || !validDate(y, mo, d) {
		return time.Time{}, 0, false
	}
	ns, n := fraction(b[20:])
	return time.Date(y, mo, d, h, mi, s, ns, loc), 20 + n, true
}

// parseAccessTime parses the access log's "26/Nov/2026:19:27:44 +0100".
func parseAccessTime(b []byte) (time.Time, bool) {
	if len(b) < 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[20] != ' ' {
		return time.Time{}, false
	}
	d, ok1 := digits(b[0:2])
	mo, ok2 := month(b[3:6])
	y, ok3 := digits(b[7:11])
	h, mi, s, ok4 := hms(b[12:])
	if !ok1 || !ok2 || !ok3 || !ok4 || !validDate(y, mo, d) {
		return time.Time{}, false
	}
	loc, ok := zone(b[21:26])
	if !ok {
		return time.Time{}, false
	}
	return time.Date(y, mo, d, h, mi, s, 0, loc), true
}

// zone parses "+0100", "-05:30" or "Z" into a fixed zone.
func zone(b []byte) (*time.Location, bool) {
	l, _, ok := zoneN(b)
	return l, ok
}

// zoneN is zone that also returns the bytes consumed.
func zoneN(b []byte) (*time.Location, int, bool) {
	if len(b) >= 1 && b[0] == 'Z' {
		return time.UTC, 1, true
	}
	if len(b) < 5 || (b[0] != '+' && b[0] != '-') {
		return nil, 0, false
	}
	hh, ok1 := digits(b[1:3])
	mmb, n := b[3:5], 5
	if b[3] == ':' {
		if len(b) < 6 {
			return nil, 0, false
		}
		mmb, n = b[4:6], 6
	}
	mm, ok2 := digits(mmb)
	if !ok1 || !ok2 || hh > 14 || mm > 59 {
		return nil, 0, false
	}
	off := hh*3600 + mm*60
	if b[0] == '-' {
		off = -off
	}
	if off == 0 {
		return time.UTC, n, true
	}
	return fixedZone(off), n, true
}

// fixedZones caches fixed zones by offset so that parsing does not
// allocate (made on first use: most commands parse no log).
var fixedZones = sync.OnceValue(func() map[int]*time.Location {
	m := map[int]*time.Location{}
	for off := -12 * 3600; off <= 14*3600; off += 900 {
		m[off] = time.FixedZone("", off)
	}
	return m
})

func fixedZone(off int) *time.Location {
	if l, ok := fixedZones()[off]; ok {
		return l
	}
	return time.FixedZone("", off)
}

// parseISO parses "2026-11-26T19:27:44[.,frac][Z|+00:00|+0000]" (rsyslog,
// journalctl -o short-iso, dmesg --time-format=iso) and returns the bytes
// consumed. Without a zone, loc is used.
func parseISO(b []byte, loc *time.Location) (time.Time, int, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') {
		return time.Time{}, 0, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	h, mi, s, ok4 := hms(b[11:])
	if !ok1 || !ok2 || !ok3 || !ok4 || !validDate(y, time.Month(mo), d) {
		return time.Time{}, 0, false
	}
	n := 19
	ns, fn := fraction(b[n:])
	n += fn
	if z, zn, ok := zoneN(b[n:]); ok {
		loc = z
		n += zn
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, ns, loc), n, true
}

// parseCtime parses "Thu Nov 26 19:27:44[.123456] 2026" (dmesg -T, Apache)
// and returns the bytes consumed.
func parseCtime(b []byte, loc *time.Location) (time.Time, int, bool) {
	if len(b) < 24 || b[3] != ' ' || b[7] != ' ' {
		return time.Time{}, 0, false
	}
	mo, ok1 := month(b[4:7])
	d, ok2 := spaceDigits(b[8:10])
	if b[10] != ' ' {
		return time.Time{}, 0, false
	}
	h, mi, s, ok3 := hms(b[11:])
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, 0, false
	}
	n := 19
	ns, fn := fraction(b[n:])
	n += fn
	if n+5 > len(b) || b[n] != ' ' {
		return time.Time{}, 0, false
	}
	y, ok4 := digits(b[n+1 : n+5])
	if !ok4 || !validDate(y, mo, d) {
		return time.Time{}, 0, false
	}
	return time.Date(y, mo, d, h, mi, s, ns, loc), n + 5, true
}

// parseSyslogTime parses the RFC 3164 "Nov 26 19:27:44" (no year). The year
// comes from yearState, which handles December -> January rollover.
func parseSyslogTime(b []byte, loc *time.Location, ys *yearState) (time.Time, bool) {
	if len(b) < 15 || b[3] != ' ' || b[6] != ' ' {
		return time.Time{}, false
	}
	mo, ok1 := month(b[0:3])
	d, ok2 := spaceDigits(b[4:6])
	h, mi, s, ok3 := hms(b[7:])
	if !ok1 || !ok2 || !ok3 || d < 1 || d > 31 {
		return time.Time{}, false
	}
	y := ys.year(mo)
	return time.Date(y, mo, d, h, mi, s, 0, loc), true
}

// yearState infers the year of year-less timestamps of one file: it starts
// from the year of the file's modification time (the newest line), assumes a
// first month later than the reference month belongs to the previous year,
// and increments the year when the month goes from late in the year back to
// early in the year.
type yearState struct {
	refYear  int
	refMonth time.Month
	cur      int
	last     time.Month
}

func newYearState(ref time.Time) *yearState {
	return &yearState{refYear: ref.Year(), refMonth: ref.Month()}
}

func (ys *yearState) year(mo time.Month) int {
	if ys.cur == 0 {
		ys.cur = ys.refYear
		if mo > ys.refMonth {
			ys.cur--
		}
	} else if mo < ys.last && ys.last-mo >= 6 {
		ys.cur++
	}
	ys.last = mo
	return ys.cur
}

// parseUptime parses the dmesg "[  652.248812]" stamp at the start of b and
// returns seconds since boot and the bytes consumed (including one space
// after the bracket).
func parseUptime(b []byte) (float64, int, bool) {
	if len(b) < 3 || b[0] != '[' {
		return 0, 0, false
	}
	i := 1
	for i < len(b) && b[i] == ' ' {
		i++
	}
	st := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	sec, ok := digits(b[st:i])
	if !ok || i >= len(b) || b[i] != '.' {
		return 0, 0, false
	}
	i++
	fs := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	frac, ok := digits(b[fs:i])
	if !ok || i >= len(b) || b[i] != ']' {
		return 0, 0, false
	}
	v := float64(sec) + float64(frac)/pow10(i-fs)
	i++
	if i < len(b) && b[i] == ' ' {
		i++
	}
	return v, i, true
}

func pow10(n int) float64 {
	p := 1.0
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}
