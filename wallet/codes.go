package wallet

import (
	"errors"

	"github.com/creditledger/creditledger/ledger"
)

// Rejection codes of wallet operations, as recorded in the journal. The API
// maps them to HTTP statuses.
const (
	// CodeInsufficientCredits: the wallet's credits (and overage allowance)
	// cannot cover a debit or hold; nothing was posted. The ledger core's
	// word for it is overdraft; a wallet speaks of credits.
	CodeInsufficientCredits = "insufficient_credits"
	CodeHoldClosed          = ledger.CodeHoldClosed
	CodeHoldNotFound        = ledger.CodeHoldNotFound
	CodeCaptureExceedsHold  = ledger.CodeHoldExceeded
	CodeGrantClosed         = "grant_closed"
)

// RejectionCodes lists the codes wallet operations record besides the
// ledger's own, for tables that must map each.
func RejectionCodes() []string {
	return []string{CodeInsufficientCredits, CodeGrantClosed, CodeTopupClosed}
}

// credits speaks of a ledger overdraft in a wallet's words: a grant that
// would go below zero is credits the wallet does not have.
func credits(err error) error {
	var rej *ledger.Rejection
	if errors.As(err, &rej) && rej.Code == ledger.CodeOverdraft {
		return ledger.Reject(CodeInsufficientCredits, "%s", rej.Detail)
	}
	return err
}
