package server

import (
	"strconv"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
)

// sparkDays is how many days a group's sparkline shows.
const sparkDays = 14

// sparkline is a group's crashes per day over the last sparkDays days, as
// bars of an inline SVG.
type sparkline struct {
	Width, Height int
	Bars          []sparkBar
	Total, Max    int
	Title         string
}

type sparkBar struct {
	X, Y, W, H int
	Title      string
}

const (
	sparkBarWidth = 5
	sparkBarGap   = 1
	sparkHeight   = 20
)

// sparklines lays out the sparkline of every group from the daily counts
// of all groups (one query), the last day being today (UTC).
func sparklines(days []store.DayCount, now time.Time) map[string]*sparkline {
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(sparkDays - 1))
	counts := map[string][]int{}
	for _, d := range days {
		i := int(d.Day.Sub(first) / (24 * time.Hour))
		if i < 0 || i >= sparkDays {
			continue
		}
		c := counts[d.Fingerprint]
		if c == nil {
			c = make([]int, sparkDays)
			counts[d.Fingerprint] = c
		}
		c[i] += d.N
	}
	out := map[string]*sparkline{}
	for fp, c := range counts {
		sl := &sparkline{Width: sparkDays*(sparkBarWidth+sparkBarGap) - sparkBarGap, Height: sparkHeight}
		for _, n := range c {
			sl.Total += n
			sl.Max = max(sl.Max, n)
		}
		for i, n := range c {
			day := first.AddDate(0, 0, i).Format("Jan 2")
			h := 1 // an empty day is a baseline tick
			if n > 0 {
				h = max(2, n*sparkHeight/sl.Max)
			}
			sl.Bars = append(sl.Bars, sparkBar{X: i * (sparkBarWidth + sparkBarGap), Y: sparkHeight - h, W: sparkBarWidth, H: h,
				Title: day + ": " + strconv.Itoa(n)})
		}
		sl.Title = strconv.Itoa(sl.Total) + " crashes in the last " + strconv.Itoa(sparkDays) + " days, at most " + strconv.Itoa(sl.Max) + " a day"
		out[fp] = sl
	}
	return out
}
