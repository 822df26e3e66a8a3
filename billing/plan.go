package billing

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

// A plan is a versioned price book with fees and included credits, sold in
// one currency on one interval. A version is in force from its
// effective_at until the next one's; versions only ever append, so an
// event, a fee or a grant is always priced by the version in force at its
// time and a new version re-rates nothing.

// Plan is one version of a plan, with the plan's own fields.
type Plan struct {
	Code              string           `json:"code"`
	Name              string           `json:"name,omitempty"`
	Currency          string           `json:"currency"`
	Interval          Interval         `json:"interval"`
	Version           int              `json:"version"`
	VersionID         uuid.UUID        `json:"-"`
	EffectiveAt       time.Time        `json:"effective_at"`
	BaseFee           ledger.Amount    `json:"base_fee"`
	MinimumCommitment ledger.Amount    `json:"minimum_commitment"`
	IncludedCredits   []IncludedCredit `json:"included_credits"`
	OveragePolicy     string           `json:"overage_policy"`
	Prices            []metering.Price `json:"prices"`
	ArchivedAt        *time.Time       `json:"archived_at"`
	Versions          []VersionRef     `json:"versions"`
	CreatedAt         time.Time        `json:"created_at"`

	idempotencyKey *string // of the request that made the version, if any
	requestHash    []byte
}

// VersionRef names a version of a plan and when it takes effect.
type VersionRef struct {
	Version     int       `json:"version"`
	EffectiveAt time.Time `json:"effective_at"`
}

// IncludedCredit is an amount of an asset granted each period.
type IncludedCredit struct {
	Asset    string        `json:"asset"`
	Amount   ledger.Amount `json:"amount"`
	Rollover bool          `json:"rollover"` // the rest carries into the next periods rather than expiring
	Priority int           `json:"priority"` // burn-down order among the wallet's grants; default 10
}

// NewPlan is what CreatePlan and AddVersion need. AddVersion takes no
// Code; Currency and Interval, when given to it, must be the plan's.
type NewPlan struct {
	Code              string
	Name              string
	Currency          string
	Interval          Interval // default month
	BaseFee           *ledger.Amount
	MinimumCommitment *ledger.Amount
	IncludedCredits   []NewIncludedCredit
	OveragePolicy     string // allow (default) or block
	Prices            []metering.NewPrice
	EffectiveAt       *time.Time // versions only; default now
}

// NewIncludedCredit is an included_credits entry as sent.
type NewIncludedCredit struct {
	Asset    string         `json:"asset"`
	Amount   *ledger.Amount `json:"amount"`
	Rollover bool           `json:"rollover"`
	Priority *int           `json:"priority"`
}

// Interval is a plan's billing period.
type Interval string

const (
	Month Interval = "month"
	Week  Interval = "week"
	Year  Interval = "year"
)

// Overage policies of the wallets a subscription opens.
const (
	OverageAllow = "allow"
	OverageBlock = "block"
)

var (
	planCodePattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	assetPattern    = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,15}$`)
)

// validate checks what a version defines by itself, and fills defaults:
// fees zero, interval month, policy allow, included priority 10.
func (np *NewPlan) validate(isVersion bool) (IncludedCredits []IncludedCredit, err error) {
	if !isVersion && !planCodePattern.MatchString(np.Code) {
		return nil, fault.Invalidf("code", "1 to 64 lower-case letters, digits, '_', '.' or '-', starting with a letter")
	}
	if err := text.Check("name", np.Name, 200); err != nil {
		return nil, invalidText(err)
	}
	if !isVersion || np.Currency != "" {
		if !currencyPattern.MatchString(np.Currency) {
			return nil, fault.Invalidf("currency", "an ISO 4217 code: three upper-case letters, e.g. USD")
		}
	}
	switch np.Interval {
	case "":
		if !isVersion {
			np.Interval = Month
		}
	case Month, Week, Year:
	default:
		return nil, fault.Invalidf("interval", "month, week or year")
	}
	for _, f := range []struct {
		name string
		v    **ledger.Amount
	}{{"base_fee", &np.BaseFee}, {"minimum_commitment", &np.MinimumCommitment}} {
		if *f.v == nil {
			zero := ledger.Zero
			*f.v = &zero
			continue
		}
		if (*f.v).IsNegative() {
			return nil, fault.Invalidf(f.name, "must not be negative")
		}
		if err := ledger.CheckOpAmount(**f.v); err != nil {
			return nil, fault.Invalidf(f.name, "%v", err)
		}
	}
	switch np.OveragePolicy {
	case "":
		np.OveragePolicy = OverageAllow
	case OverageAllow, OverageBlock:
	default:
		return nil, fault.Invalidf("overage_policy", "allow or block")
	}
	seen := map[string]bool{}
	out := []IncludedCredit{}
	for i, ic := range np.IncludedCredits {
		field := fmt.Sprintf("included_credits[%d]", i)
		if !assetPattern.MatchString(ic.Asset) {
			return nil, fault.Invalidf(field+".asset", "1 to 16 upper-case letters, digits or _, starting with a letter")
		}
		if seen[ic.Asset] {
			return nil, fault.Invalidf(field+".asset", "%s is included twice", ic.Asset)
		}
		seen[ic.Asset] = true
		if ic.Amount == nil || !ic.Amount.IsPositive() {
			return nil, fault.Invalidf(field+".amount", "required, greater than zero")
		}
		if err := ledger.CheckOpAmount(*ic.Amount); err != nil {
			return nil, fault.Invalidf(field+".amount", "%v", err)
		}
		prio := 10
		if ic.Priority != nil {
			if prio = *ic.Priority; prio < 0 || prio > 1000 {
				return nil, fault.Invalidf(field+".priority", "from 0 to 1000")
			}
		}
		out = append(out, IncludedCredit{Asset: ic.Asset, Amount: *ic.Amount, Rollover: ic.Rollover, Priority: prio})
	}
	if len(np.Prices) > 200 {
		return nil, fault.Invalidf("prices", "at most 200")
	}
	return out, nil
}

// invalidText is a text.Error as an invalid field.
func invalidText(err error) error {
	var te *text.Error
	if errors.As(err, &te) {
		return fault.Invalidf(te.Field, "%s", te.Detail)
	}
	return err
}
