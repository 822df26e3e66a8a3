package billing

import (
	"testing"
	"time"
)

func TestPeriod(t *testing.T) {
	d := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		iv                 Interval
		anchor, at         string
		wantStart, wantEnd string
	}{
		{Month, "2026-01-31T10:00:00Z", "2026-02-15T00:00:00Z", "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"},
		{Month, "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z", "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"},
		{Month, "2026-01-31T10:00:00Z", "2026-03-31T09:59:59Z", "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"},
		{Month, "2026-01-15T00:00:00Z", "2026-01-15T00:00:00Z", "2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z"},
		{Month, "2026-01-15T00:00:00Z", "2027-01-14T23:59:59Z", "2026-12-15T00:00:00Z", "2027-01-15T00:00:00Z"},
		{Week, "2026-03-02T00:00:00Z", "2026-03-16T00:00:00Z", "2026-03-16T00:00:00Z", "2026-03-23T00:00:00Z"},
		{Week, "2026-03-02T00:00:00Z", "2026-03-15T23:59:59Z", "2026-03-09T00:00:00Z", "2026-03-16T00:00:00Z"},
		{Year, "2024-02-29T00:00:00Z", "2025-03-01T00:00:00Z", "2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z"},
		{Year, "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"},
		{Month, "2026-05-10T00:00:00Z", "2026-04-01T00:00:00Z", "2026-05-10T00:00:00Z", "2026-06-10T00:00:00Z"}, // before the anchor: the first
	} {
		start, end := tc.iv.period(d(tc.anchor), d(tc.at))
		if !start.Equal(d(tc.wantStart)) || !end.Equal(d(tc.wantEnd)) {
			t.Errorf("%s from %s at %s: [%s, %s), want [%s, %s)", tc.iv, tc.anchor, tc.at, start.Format(time.RFC3339),
				end.Format(time.RFC3339), tc.wantStart, tc.wantEnd)
		}
	}
}
