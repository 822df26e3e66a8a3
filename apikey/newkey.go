package apikey

import (
	"errors"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
)

// Bounds of a key's text, in bytes.
const (
	MaxNameLen       = 200
	MaxCustomerIDLen = 255
)

// NewKey is what Create needs.
type NewKey struct {
	Scope Scope
	// CustomerID binds the key to one customer: required for portal keys,
	// allowed for ingest keys (which may then send only that customer's
	// events: see api/auth's Caller.MayIngestFor), refused for the others.
	CustomerID string
	Name       string        // a label for humans; may be empty
	TTL        time.Duration // the key's lifetime; 0: it does not expire
}

// Check refuses a request Create would refuse: every wrong field at once,
// each a fault.Invalid naming it as the API does, joined with errors.Join;
// nil if there is none. Callers that must look something up before
// creating (that the customer exists) check first, so a customer id that
// is not text never reaches the database.
func (k NewKey) Check() error {
	var errs []error
	switch {
	case k.Scope == "":
		errs = append(errs, fault.Invalidf("scope", "is required"))
	case !k.Scope.Valid():
		errs = append(errs, fault.Invalidf("scope", "%s", scopeChoices))
	case k.Scope == Portal && k.CustomerID == "":
		errs = append(errs, fault.Invalidf("customer_id", "is required for portal keys"))
	case !k.Scope.MayHaveCustomer() && k.CustomerID != "":
		errs = append(errs, fault.Invalidf("customer_id", "is allowed only for portal and ingest keys"))
	}
	// Bounded text PostgreSQL stores: a NUL or invalid UTF-8 would be its
	// error, not ours.
	errs = append(errs, checkText("customer_id", k.CustomerID, MaxCustomerIDLen), checkText("name", k.Name, MaxNameLen))
	if k.TTL < 0 {
		errs = append(errs, fault.Invalidf("expires_in_seconds", "must not be negative"))
	}
	return errors.Join(errs...)
}

// checkText is text.Check's refusal as a fault.
func checkText(field, s string, maxBytes int) error {
	var te *text.Error
	if errors.As(text.Check(field, s, maxBytes), &te) {
		return fault.Invalidf(te.Field, "%s", te.Detail)
	}
	return nil
}
