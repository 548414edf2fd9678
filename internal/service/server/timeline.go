package server

import (
	"sort"
	"strconv"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
)

// palette colours the groups in the timeline (colour-blind friendly).
var palette = []string{"#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#332288", "#117733", "#882255"}

// timeline is a stacked bar chart of crashes per hour, laid out for inline SVG.
type timeline struct {
	Width, Height int
	Bars          []bar
	Ticks         []tick
	Max           int
	YLabel        int // y of the max label
	Empty         bool
}

type bar struct {
	X, Y, W, H int
	Colour     string
	Title      string
}

type tick struct {
	X     int
	Label string
}

const (
	chartLeft   = 40
	chartTop    = 10
	chartHeight = 140
	barWidth    = 18
	barGap      = 2
)

func buildTimeline(hs []store.HourCount, colours map[string]string, now time.Time, hours int) *timeline {
	end := now.UTC().Truncate(time.Hour)
	start := end.Add(-time.Duration(hours-1) * time.Hour)
	perHour := make([]map[string]int, hours)
	totals := make([]int, hours)
	max := 0
	for _, h := range hs {
		i := int(h.Hour.Sub(start) / time.Hour)
		if i < 0 || i >= hours {
			continue
		}
		if perHour[i] == nil {
			perHour[i] = map[string]int{}
		}
		perHour[i][h.Fingerprint] += h.N
		totals[i] += h.N
		if totals[i] > max {
			max = totals[i]
		}
	}
	t := &timeline{Width: chartLeft + hours*(barWidth+barGap) + 10, Height: chartTop + chartHeight + 24, Max: max,
		YLabel: chartTop + 10, Empty: max == 0}
	if max == 0 {
		max = 1
	}
	for i := 0; i < hours; i++ {
		x := chartLeft + i*(barWidth+barGap)
		hour := start.Add(time.Duration(i) * time.Hour)
		if hour.Hour()%6 == 0 {
			t.Ticks = append(t.Ticks, tick{X: x, Label: hour.Format("15:04")})
		}
		fps := make([]string, 0, len(perHour[i]))
		for fp := range perHour[i] {
			fps = append(fps, fp)
		}
		sort.Strings(fps)
		y := chartTop + chartHeight
		for _, fp := range fps {
			n := perHour[i][fp]
			h := n * chartHeight / max
			if h < 2 {
				h = 2
			}
			y -= h
			c := colours[fp]
			if c == "" {
				c = "#999999"
			}
			short := fp
			if len(short) > 12 {
				short = short[:12]
			}
			t.Bars = append(t.Bars, bar{X: x, Y: y, W: barWidth, H: h, Colour: c,
				Title: hour.Format("2006-01-02 15:00") + " UTC: " + strconv.Itoa(n) + " × " + short})
		}
	}
	return t
}
