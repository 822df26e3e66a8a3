package portal

import (
	"fmt"
	"html/template"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/metering"
)

// chart is a meter's usage per day drawn as SVG bars: one bar per day of
// the range, a day without usage an empty slot. The bars of days with
// usage carry data-day and data-quantity (tests and the script read them).
type chart struct {
	Width, Height int
	Bars          []bar
	Points        int // days with usage
	Max           string
	FirstDay      string
	LastDay       string
}

type bar struct {
	X, Y, W, H float64
	Day        string
	Label      string
	Quantity   string
	Used       bool
}

const (
	chartW, chartH = 640, 160
	chartTop       = 8
)

func newChart(series []metering.UsagePoint, from, to time.Time) chart {
	day0 := from.UTC().Truncate(24 * time.Hour)
	days := max(int(to.Sub(day0).Hours()/24), 1)
	byDay := map[string]decimal.Decimal{}
	peak := decimal.Zero
	for _, p := range series {
		k := p.Start.UTC().Format(time.DateOnly)
		byDay[k] = byDay[k].Add(p.Quantity)
		if byDay[k].GreaterThan(peak) {
			peak = byDay[k]
		}
	}
	c := chart{Width: chartW, Height: chartH, Max: groupDigits(peak.String()),
		FirstDay: shortDay(day0), LastDay: shortDay(day0.AddDate(0, 0, days-1))}
	slot := float64(chartW) / float64(days)
	w := max(slot*0.7, 1)
	for i := range days {
		d := day0.AddDate(0, 0, i)
		k := d.Format(time.DateOnly)
		q, used := byDay[k]
		b := bar{X: float64(i)*slot + (slot-w)/2, W: w, Day: k, Label: d.Format("Mon 2 Jan"), Used: used}
		if used {
			c.Points++
			b.Quantity = q.String()
			h := 2.0
			if peak.IsPositive() {
				h = max(q.Div(peak).InexactFloat64()*float64(chartH-chartTop), 2)
			}
			b.H, b.Y = h, float64(chartH)-h
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// viewBox is the SVG's coordinate box.
func (c chart) ViewBox() template.HTMLAttr {
	return template.HTMLAttr(fmt.Sprintf(`viewBox="0 0 %d %d"`, c.Width, c.Height))
}
