package ledger

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// Scale is the ledger's fixed number of fractional digits. Twelve digits hold
// per-token prices (0.000003) with room to spare; NUMERIC(38,12) columns store
// them exactly. Nothing is rounded inside the ledger: an amount with more
// digits is refused, not truncated.
const Scale = 12

// MaxIntegerDigits is what NUMERIC(38,12) leaves for the integer part.
const MaxIntegerDigits = 38 - Scale

// Amount is an exact decimal quantity of some asset. The zero value is 0.
// In JSON it is a string ("12.5"); a JSON number is refused so no float ever
// carries money.
type Amount struct{ d decimal.Decimal }

// Errors returned by ParseAmount; the API maps them to 422 validation errors.
var (
	ErrAmountSyntax = errors.New("amount must be a decimal string like \"12.50\"")
	ErrAmountScale  = fmt.Errorf("amount has more than %d fractional digits", Scale)
	ErrAmountRange  = fmt.Errorf("amount has more than %d integer digits", MaxIntegerDigits)
)

var amountSyntax = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)

// ParseAmount parses a plain decimal string: an optional minus, digits, an
// optional fraction. Exponents, signs like "+", spaces and leading zeros are
// refused so that one amount has exactly one spelling on the wire.
func ParseAmount(s string) (Amount, error) {
	if len(s) > 80 || !amountSyntax.MatchString(s) {
		return Amount{}, ErrAmountSyntax
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return Amount{}, ErrAmountSyntax
	}
	return checkAmount(d)
}

// MustAmount parses s or panics; for constants and tests.
func MustAmount(s string) Amount {
	a, err := ParseAmount(s)
	if err != nil {
		panic(fmt.Sprintf("ledger.MustAmount(%q): %v", s, err))
	}
	return a
}

// NewAmount wraps a decimal, refusing what the ledger cannot store exactly.
func NewAmount(d decimal.Decimal) (Amount, error) { return checkAmount(d) }

func checkAmount(d decimal.Decimal) (Amount, error) {
	if -d.Exponent() > Scale {
		// 1.500 has exponent -3 but only one significant fractional digit.
		if !d.Equal(d.Truncate(Scale)) {
			return Amount{}, ErrAmountScale
		}
		d = d.Truncate(Scale)
	}
	if len(d.Truncate(0).Abs().String()) > MaxIntegerDigits {
		return Amount{}, ErrAmountRange
	}
	return Amount{d: d}, nil
}

// Zero is 0.
var Zero = Amount{}

func (a Amount) Decimal() decimal.Decimal { return a.d }
func (a Amount) Add(b Amount) Amount      { return Amount{d: a.d.Add(b.d)} }
func (a Amount) Sub(b Amount) Amount      { return Amount{d: a.d.Sub(b.d)} }
func (a Amount) Neg() Amount              { return Amount{d: a.d.Neg()} }
func (a Amount) Cmp(b Amount) int         { return a.d.Cmp(b.d) }
func (a Amount) Equal(b Amount) bool      { return a.d.Equal(b.d) }
func (a Amount) IsZero() bool             { return a.d.IsZero() }
func (a Amount) IsPositive() bool         { return a.d.IsPositive() }
func (a Amount) IsNegative() bool         { return a.d.IsNegative() }
func (a Amount) Sign() int                { return a.d.Sign() }

// Min returns the smaller of a and b.
func (a Amount) Min(b Amount) Amount {
	if a.d.Cmp(b.d) <= 0 {
		return a
	}
	return b
}

// Max returns the larger of a and b.
func (a Amount) Max(b Amount) Amount {
	if a.d.Cmp(b.d) >= 0 {
		return a
	}
	return b
}

// String is the canonical spelling: no exponent, no trailing zeros.
func (a Amount) String() string {
	s := a.d.String()
	return s
}

func (a Amount) MarshalJSON() ([]byte, error) {
	return []byte(`"` + a.String() + `"`), nil
}

// ErrAmountNotString is returned when JSON carries an amount as a number.
var ErrAmountNotString = errors.New("amount must be a JSON string, not a number")

func (a *Amount) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return ErrAmountNotString
	}
	v, err := ParseAmount(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ScanNumeric lets pgx read NUMERIC columns straight into an Amount.
func (a *Amount) ScanNumeric(n pgtype.Numeric) error {
	if !n.Valid {
		*a = Amount{}
		return nil
	}
	if n.NaN || n.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("numeric %v is not an amount", n)
	}
	a.d = decimal.NewFromBigInt(n.Int, n.Exp)
	return nil
}

// NumericValue lets pgx write an Amount to NUMERIC columns.
func (a Amount) NumericValue() (pgtype.Numeric, error) {
	coef := a.d.Coefficient()
	if coef == nil {
		coef = new(big.Int)
	}
	return pgtype.Numeric{Int: coef, Exp: a.d.Exponent(), Valid: true}, nil
}

// numericArray is amounts as a NUMERIC[] literal ("{1.5,-2,0.000003}"),
// the form a multi-row statement's amounts are sent in. pgx sends a string
// as text, as it is; a []Amount went through reflection and, per element,
// a boxed interface, a big.Int copy and pgx's base-10000 conversion. Exact:
// each element is the amount's own decimal digits, parsed by the server
// into the NUMERIC(38,12) column without rounding.
func numericArray(xs []Amount) string {
	var sb strings.Builder
	sb.Grow(2 + 12*len(xs))
	var tmp [48]byte
	sb.WriteByte('{')
	for i, a := range xs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.Write(a.appendText(tmp[:0]))
	}
	sb.WriteByte('}')
	return sb.String()
}

// appendText appends the amount in plain decimal notation (no exponent),
// without allocating when the coefficient has at most 18 digits: every
// amount a request carries, and any counter below 10^6 at full scale.
// Trailing fractional zeros are kept: 1.50 and 1.5 are one NUMERIC value.
func (a Amount) appendText(buf []byte) []byte {
	if a.d.Sign() == 0 {
		return append(buf, '0')
	}
	if a.d.NumDigits() > 18 {
		return append(buf, a.d.String()...)
	}
	c, exp := a.d.CoefficientInt64(), int(a.d.Exponent())
	if c < 0 {
		buf = append(buf, '-')
		c = -c
	}
	var dig [20]byte
	digits := strconv.AppendUint(dig[:0], uint64(c), 10)
	if exp >= 0 {
		buf = append(buf, digits...)
		for range exp {
			buf = append(buf, '0')
		}
		return buf
	}
	frac := -exp
	if len(digits) <= frac {
		buf = append(buf, '0', '.')
		for range frac - len(digits) {
			buf = append(buf, '0')
		}
		return append(buf, digits...)
	}
	buf = append(buf, digits[:len(digits)-frac]...)
	buf = append(buf, '.')
	return append(buf, digits[len(digits)-frac:]...)
}

// The ledger's limits, and why no sequence of accepted operations can
// overflow a counter.
//
// Every counter (debits_posted, credits_posted, debits_pending,
// credits_pending) is NUMERIC(38,12): it holds values below 10^26
// (Limits.Counter).
//
//   - A wallet's accounts (grants, overage, …) are locked and loaded by the
//     batch that changes them, so the batch knows each counter exactly and
//     refuses an operation that would take one to Limits.Counter
//     (CodeLimitExceeded). Only that operation is refused, and the account
//     is the wallet's own: nobody else's operations are touched.
//   - A hot account's rows (revenue:usage, funding:*, …) are shared by every
//     customer of a poster shard and never loaded. A batch refuses an
//     operation that would take the batch's own change of a hot row to
//     Limits.HotBatchDelta (10^22). After writing, the batch learns which of
//     its hot rows reached Limits.HotRowRoll (10^25), and the process writes
//     that row's successor (row + the account's shard count) from then on,
//     leaving the full row as it is (its postings still sum to it). A row
//     passes HotRowRoll only through batches that had not yet learnt it
//     crossed: at most one per process writing that row, since a shard
//     commits one batch at a time and every batch learns from its own
//     UPDATE. Reaching 10^26 would take (10^26 − 10^25) / 10^22 = 9,000
//     processes committing to the same row in the same instant.
//   - MaxOpAmount (10^15) bounds what one request may ask to move (a grant,
//     a debit, a hold, a top-up, one usage charge). It is checked at the
//     edge, where a 422 can name the field, so the limits inside the batch
//     are a second line that ordinary traffic never meets.
//   - A batch carries at most MaxBatchOps operations (Options.MaxBatch is
//     checked against it).

// MaxOpAmount is the most one request may move: 10^15 units of its asset
// (a quadrillion: 10^7 times the largest single payment card networks
// allow, in any currency's minor units). Amounts are exact up to Scale
// fractional digits below it.
var MaxOpAmount = Amount{d: decimal.New(1, 15)}

// MaxBatchOps bounds Options.MaxBatch.
const MaxBatchOps = 100_000

// ErrAmountTooLarge is returned by CheckOpAmount; the API maps it to a 422
// naming the field.
var ErrAmountTooLarge = fmt.Errorf("amount exceeds the ledger's limit of %s per operation", MaxOpAmount)

// CheckOpAmount refuses an amount larger than MaxOpAmount (in absolute
// value).
func CheckOpAmount(a Amount) error {
	if a.d.Abs().Cmp(MaxOpAmount.d) > 0 {
		return ErrAmountTooLarge
	}
	return nil
}

// Limits are the batch's counter limits (see the top of this file). The
// zero value means the defaults; tests lower them to reach them cheaply.
type Limits struct {
	Counter       Amount // a counter stays below this: 10^26
	HotBatchDelta Amount // a batch's change of one hot row stays below this: 10^22
	HotRowRoll    Amount // a hot row at or past this is rolled over: 10^25
}

func (l Limits) withDefaults() Limits {
	if l.Counter.IsZero() {
		l.Counter = Amount{d: decimal.New(1, MaxIntegerDigits)}
	}
	if l.HotBatchDelta.IsZero() {
		l.HotBatchDelta = Amount{d: decimal.New(1, MaxIntegerDigits-4)}
	}
	if l.HotRowRoll.IsZero() {
		l.HotRowRoll = Amount{d: decimal.New(1, MaxIntegerDigits-1)}
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case !l.Counter.IsPositive() || !l.HotBatchDelta.IsPositive() || !l.HotRowRoll.IsPositive():
		return errors.New("ledger limits must be positive")
	case l.HotRowRoll.Add(l.HotBatchDelta).Cmp(l.Counter) > 0:
		return errors.New("ledger limits: HotRowRoll + HotBatchDelta must stay below Counter")
	}
	return nil
}

// overLimit says which counter of bal is at or past limit, or "".
func overLimit(bal Balance, limit Amount) string {
	switch {
	case bal.DebitsPosted.Cmp(limit) >= 0:
		return "debits_posted"
	case bal.CreditsPosted.Cmp(limit) >= 0:
		return "credits_posted"
	case bal.DebitsPending.Cmp(limit) >= 0:
		return "debits_pending"
	case bal.CreditsPending.Cmp(limit) >= 0:
		return "credits_pending"
	}
	return ""
}
