package webhook

import (
	"errors"
	"fmt"
	"testing"

	"github.com/creditledger/creditledger/fault"
)

// A refusal at dial time keeps what it refused for the delivery log, and is
// an Invalid url in the service's vocabulary of errors.
func TestBlockedErrorIsInvalidURL(t *testing.T) {
	for _, tc := range []struct {
		address string
		reason  string
	}{
		{"127.0.0.1:9", "loopback"},
		{"[::ffff:10.0.0.1]:443", "private"},
		{"169.254.169.254:80", "cloud metadata"},
	} {
		err := fmt.Errorf("dial: %w", (&guard{}).control("tcp", tc.address, nil))
		var b *BlockedError
		if !errors.As(err, &b) || b.Reason != tc.reason {
			t.Errorf("%s: %v, want a BlockedError for a %s address", tc.address, err, tc.reason)
			continue
		}
		fe, ok := fault.As(err)
		if !ok || fe.Kind != fault.Invalid || fe.Field != "url" || fault.Of(err) != fault.Invalid {
			t.Errorf("%s: fault %+v, want Invalid on url", tc.address, fe)
		}
	}
	if err := (&guard{allowPrivate: true}).control("tcp", "127.0.0.1:9", nil); err != nil {
		t.Errorf("allowPrivate: %v", err)
	}
}
