package ledger

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	cases := []struct {
		in   string
		want string
		err  error
	}{
		{"12.5", "12.5", nil},
		{"0", "0", nil},
		{"-3", "-3", nil},
		{"0.000000000001", "0.000000000001", nil},
		{"1.500000000000", "1.5", nil},
		{"0.0000000000001", "", ErrAmountScale},
		{"1e3", "", ErrAmountSyntax},
		{"+1", "", ErrAmountSyntax},
		{"01", "", ErrAmountSyntax},
		{" 1", "", ErrAmountSyntax},
		{"1.", "", ErrAmountSyntax},
		{".5", "", ErrAmountSyntax},
		{"NaN", "", ErrAmountSyntax},
		{"", "", ErrAmountSyntax},
		{strings.Repeat("9", 26), strings.Repeat("9", 26), nil},
		{strings.Repeat("9", 27), "", ErrAmountRange},
	}
	for _, c := range cases {
		got, err := ParseAmount(c.in)
		if !errors.Is(err, c.err) {
			t.Errorf("ParseAmount(%q) error = %v, want %v", c.in, err, c.err)
			continue
		}
		if err == nil && got.String() != c.want {
			t.Errorf("ParseAmount(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestAmountJSONIsAString(t *testing.T) {
	var a Amount
	if err := json.Unmarshal([]byte(`12.5`), &a); !errors.Is(err, ErrAmountNotString) {
		t.Fatalf("number accepted: %v", err)
	}
	if err := json.Unmarshal([]byte(`"12.50"`), &a); err != nil || a.String() != "12.5" {
		t.Fatalf("got %s, %v", a, err)
	}
	b, _ := json.Marshal(struct{ A Amount }{MustAmount("0.000003")})
	if string(b) != `{"A":"0.000003"}` {
		t.Fatalf("marshal = %s", b)
	}
}

// A million debits of 0.000003 sum to exactly 3: no float anywhere.
func TestMillionMicroAmountsSumExactly(t *testing.T) {
	sum, step := Zero, MustAmount("0.000003")
	for i := 0; i < 1_000_000; i++ {
		sum = sum.Add(step)
	}
	if !sum.Equal(MustAmount("3")) || sum.String() != "3" {
		t.Fatalf("sum = %s, want 3", sum)
	}
}
