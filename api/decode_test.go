package api

import (
	"math"
	"testing"
	"time"
)

// A count of seconds too large for a Duration stays too large instead of
// wrapping around into range.
func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want time.Duration
	}{
		{0, 0},
		{60, time.Minute},
		{-1, -time.Second},
		{int64(math.MaxInt64 / time.Second), time.Duration(math.MaxInt64/time.Second) * time.Second},
		{int64(math.MaxInt64/time.Second) + 1, math.MaxInt64},
		{1 << 62, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64},
		{-(1 << 62), math.MinInt64},
		{math.MinInt64, math.MinInt64},
	} {
		if got := seconds(tc.n); got != tc.want {
			t.Errorf("seconds(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
