package wallet

import (
	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
)

// InvoiceID names an invoice.
type InvoiceID uuid.UUID

func (id InvoiceID) String() string { return uuid.UUID(id).String() }

func (id InvoiceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

func (id *InvoiceID) UnmarshalText(b []byte) error { return (*uuid.UUID)(id).UnmarshalText(b) }

// ParseInvoiceID parses an invoice id from a URL.
func ParseInvoiceID(s string) (InvoiceID, error) {
	u, err := uuid.Parse(s)
	return InvoiceID(u), err
}

// TopupID names a top-up.
type TopupID uuid.UUID

func (id TopupID) String() string { return uuid.UUID(id).String() }

func (id TopupID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

func (id *TopupID) UnmarshalText(b []byte) error { return (*uuid.UUID)(id).UnmarshalText(b) }

// ParseTopupID parses a top-up id from a URL.
func ParseTopupID(s string) (TopupID, error) {
	u, err := uuid.Parse(s)
	return TopupID(u), err
}

// Domain identifiers. A wallet id is also the ledger owner of the wallet's
// accounts; a grant id names its grant:<id> account.
type (
	WalletID = ledger.OwnerID
	GrantID  uuid.UUID
	HoldID   = ledger.HoldID
)

func (id GrantID) String() string { return uuid.UUID(id).String() }

func (id GrantID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

func (id *GrantID) UnmarshalText(b []byte) error { return (*uuid.UUID)(id).UnmarshalText(b) }

// ParseWalletID, ParseGrantID and ParseHoldID parse ids from URLs.
func ParseWalletID(s string) (WalletID, error) {
	u, err := uuid.Parse(s)
	return WalletID(u), err
}

func ParseGrantID(s string) (GrantID, error) {
	u, err := uuid.Parse(s)
	return GrantID(u), err
}

func ParseHoldID(s string) (HoldID, error) {
	u, err := uuid.Parse(s)
	return HoldID(u), err
}
