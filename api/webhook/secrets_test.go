package webhook_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/api/webhook"
	"github.com/creditledger/creditledger/ledger"
)

// signatures are the webhook-signature header's entries.
func signatures(r received) []string { return strings.Fields(r.header.Get("webhook-signature")) }

// signedWith reports whether the one signature sig is r's, made with
// secret (checked by verifySignature's independent code).
func signedWith(secret, sig string, r received) bool {
	one := r
	one.header = r.header.Clone()
	one.header.Set("webhook-signature", sig)
	return verifySignature(secret, one) == nil
}

// deliverOne emits an event, relays it, runs the dispatcher until rc has
// one more request, and returns that request.
func deliverOne(t *testing.T, db *ledger.DB, svc *webhook.Service, rc *receiver) received {
	t.Helper()
	n := rc.count()
	emit(t, db, webhook.EventHoldExpired, map[string]any{"hold_id": uuid.NewString()})
	relay(t, db, svc)
	until(t, svc, "the delivery", func() bool { return rc.count() > n })
	got := rc.requests()
	return got[len(got)-1]
}

// While a rotated-out secret is valid every delivery carries two
// signatures, the new secret's first; once it expires, one.
func TestRotateSecretOverlap(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	clk := newClock()
	opts := testOptions(t)
	opts.Now = clk.Now
	svc := webhook.New(db, opts)
	rc := newReceiver(t, nil)
	e, old := newEndpoint(t, svc, rc.url("/rotating"))

	r := deliverOne(t, db, svc, rc)
	if sigs := signatures(r); len(sigs) != 1 || !signedWith(old, sigs[0], r) {
		t.Fatalf("before rotating: signatures %q, want one with the secret", sigs)
	}

	rotated, fresh, err := svc.RotateSecret(ctx, e.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wantUntil := clk.Now().Add(time.Hour)
	if fresh == old || !strings.HasPrefix(fresh, webhook.SecretPrefix) || rotated.ID != e.ID ||
		rotated.PreviousSecretExpiresAt == nil || rotated.PreviousSecretExpiresAt.Sub(wantUntil).Abs() > time.Millisecond {
		t.Fatalf("RotateSecret = %+v, %q; want a new secret and the old one valid until %v", rotated, fresh, wantUntil)
	}
	r = deliverOne(t, db, svc, rc)
	sigs := signatures(r)
	if len(sigs) != 2 || !signedWith(fresh, sigs[0], r) || !signedWith(old, sigs[1], r) {
		t.Fatalf("during the overlap: signatures %q, want the new secret's and then the old one's", sigs)
	}
	if err := verifySignature(old, r); err != nil {
		t.Fatalf("a receiver holding the old secret refuses a delivery during the overlap: %v", err)
	}

	clk.Add(59 * time.Minute)
	if r := deliverOne(t, db, svc, rc); len(signatures(r)) != 2 {
		t.Fatalf("a minute before the overlap ends: signatures %q, want two", signatures(r))
	}
	clk.Add(time.Minute)
	r = deliverOne(t, db, svc, rc)
	if sigs := signatures(r); len(sigs) != 1 || !signedWith(fresh, sigs[0], r) {
		t.Fatalf("after the overlap: signatures %q, want one with the new secret", sigs)
	}
	if err := verifySignature(old, r); err == nil {
		t.Fatal("after the overlap a delivery still verifies with the old secret")
	}
	ep, err := svc.Endpoint(ctx, e.ID)
	if err != nil || ep.PreviousSecretExpiresAt != nil {
		t.Fatalf("endpoint after the overlap: %+v, %v; want no previous secret", ep, err)
	}
	var kept *string
	if err := db.Pool.QueryRow(ctx, `SELECT previous_secret FROM webhook_endpoints WHERE id = $1`, e.ID).Scan(&kept); err != nil || kept != nil {
		t.Fatalf("the expired secret is still stored after a delivery (%v)", err)
	}

	// No overlap: the old secret stops at once.
	rotated, newest, err := svc.RotateSecret(ctx, e.ID, 0)
	if err != nil || rotated.PreviousSecretExpiresAt != nil {
		t.Fatalf("RotateSecret(0) = %+v, %v; want no previous secret", rotated, err)
	}
	r = deliverOne(t, db, svc, rc)
	if sigs := signatures(r); len(sigs) != 1 || !signedWith(newest, sigs[0], r) {
		t.Fatalf("after a rotation without overlap: signatures %q, want one with the newest secret", sigs)
	}

	// Rotating twice within an overlap keeps only the secret just replaced.
	_, middle, err := svc.RotateSecret(ctx, e.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, last, err := svc.RotateSecret(ctx, e.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r = deliverOne(t, db, svc, rc)
	if sigs := signatures(r); len(sigs) != 2 || !signedWith(last, sigs[0], r) || !signedWith(middle, sigs[1], r) ||
		verifySignature(newest, r) == nil {
		t.Fatalf("after two rotations: signatures %q, want the last secret's and the one it replaced, not older", sigs)
	}

	for _, overlap := range []time.Duration{-time.Second, webhook.MaxSecretOverlap + time.Second} {
		if _, _, err := svc.RotateSecret(ctx, e.ID, overlap); !isInvalid(err, "previous_secret_expires_in_seconds") {
			t.Errorf("RotateSecret(%v): %v, want a validation error", overlap, err)
		}
	}
	if _, _, err := svc.RotateSecret(ctx, uuid.New(), time.Hour); !errors.Is(err, webhook.ErrNotFound) {
		t.Errorf("RotateSecret of an unknown endpoint: %v, want ErrNotFound", err)
	}
}
