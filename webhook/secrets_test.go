package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/secretbox"
	"github.com/creditledger/creditledger/webhook"
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
func deliverOne(t *testing.T, db *pg.DB, svc *webhook.Service, rc *receiver) received {
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
	if _, _, err := svc.RotateSecret(ctx, uuid.New(), time.Hour); !errors.Is(err, fault.NotFound) {
		t.Errorf("RotateSecret of an unknown endpoint: %v, want fault.NotFound", err)
	}
}

func newBox(t *testing.T, fill byte) *secretbox.Box {
	t.Helper()
	b, err := secretbox.New(bytes.Repeat([]byte{fill}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedSecrets is an endpoint's row as stored: its secret and previous
// secret ("" for none).
func storedSecrets(t *testing.T, db *pg.DB, id uuid.UUID) (string, string) {
	t.Helper()
	var secret string
	var previous *string
	if err := db.Pool.QueryRow(context.Background(), `SELECT secret, previous_secret FROM webhook_endpoints WHERE id = $1`,
		id).Scan(&secret, &previous); err != nil {
		t.Fatal(err)
	}
	if previous == nil {
		return secret, ""
	}
	return secret, *previous
}

// With a SecretBox, secrets are stored sealed and deliveries still verify;
// rows written before it are read as they are and sealed by SealSecrets.
func TestSecretsEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	plainOpts, sealedOpts := testOptions(t), testOptions(t)
	sealedOpts.SecretBox = newBox(t, 1)
	plain, sealed := webhook.New(db, plainOpts), webhook.New(db, sealedOpts)
	rc := newReceiver(t, nil)

	// Written before the key was set: plaintext, and still usable with it.
	before, beforeSecret := newEndpoint(t, plain, rc.url("/before"))
	if stored, _ := storedSecrets(t, db, before.ID); stored != beforeSecret {
		t.Fatalf("without a key the secret is stored as %q, want as issued", stored)
	}
	if r := deliverOne(t, db, sealed, rc); verifySignature(beforeSecret, r) != nil {
		t.Fatalf("a plaintext row is not usable by a service with a key: %q", r.header.Get("webhook-signature"))
	}

	// Written with the key: sealed, bound to the endpoint.
	if _, err := plain.DeleteEndpoint(ctx, before.ID); err != nil {
		t.Fatal(err)
	}
	e, secret := newEndpoint(t, sealed, rc.url("/sealed"))
	stored, _ := storedSecrets(t, db, e.ID)
	if !strings.HasPrefix(stored, "enc:v1:") || strings.Contains(stored, strings.TrimPrefix(secret, webhook.SecretPrefix)) {
		t.Fatalf("stored secret %q, want it sealed", stored)
	}
	if r := deliverOne(t, db, sealed, rc); verifySignature(secret, r) != nil {
		t.Fatalf("a sealed secret does not sign: %q", r.header.Get("webhook-signature"))
	}
	_, rotatedSecret, err := sealed.RotateSecret(ctx, e.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cur, prev := storedSecrets(t, db, e.ID)
	if !strings.HasPrefix(cur, "enc:v1:") || !strings.HasPrefix(prev, "enc:v1:") {
		t.Fatalf("after rotating, stored %q and %q; want both sealed", cur, prev)
	}
	r := deliverOne(t, db, sealed, rc)
	if sigs := signatures(r); len(sigs) != 2 || !signedWith(rotatedSecret, sigs[0], r) || !signedWith(secret, sigs[1], r) {
		t.Fatalf("sealed secrets during an overlap: signatures %q", sigs)
	}

	// SealSecrets seals every plaintext row, deleted ones too, once.
	countPlain := func() int {
		t.Helper()
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE secret NOT LIKE 'enc:%')
			+ count(*) FILTER (WHERE previous_secret NOT LIKE 'enc:%') FROM webhook_endpoints`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := countPlain()
	if n == 0 {
		t.Fatal("no plaintext secret to seal: the test lost its point")
	}
	rep, err := sealed.SealSecrets(ctx)
	if err != nil || rep.Sealed != n || rep.Unreadable != 0 {
		t.Fatalf("SealSecrets = %+v, %v; want %d sealed, none unreadable", rep, err, n)
	}
	if left := countPlain(); left != 0 {
		t.Fatalf("%d plaintext secrets left", left)
	}
	if stored, _ := storedSecrets(t, db, before.ID); !strings.HasPrefix(stored, "enc:v1:") {
		t.Fatalf("the deleted endpoint's secret is stored as %q, want sealed", stored)
	}
	if rep, err := sealed.SealSecrets(ctx); err != nil || rep != (webhook.SealReport{}) {
		t.Fatalf("SealSecrets again = %+v, %v; want nothing done", rep, err)
	}
}

// Without the key, or with another, a sealed secret cannot be used: each
// delivery fails with the reason in its log, nothing is sent, SealSecrets
// counts the endpoint, and once the right key is back the delivery goes
// out.
func TestSealedSecretWithoutTheKey(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	opts := testOptions(t)
	opts.SecretBox = newBox(t, 1)
	right := webhook.New(db, opts)
	rc := newReceiver(t, nil)
	e, secret := newEndpoint(t, right, rc.url("/locked"))

	for _, tc := range []struct {
		name string
		box  *secretbox.Box
		want string
	}{
		{"no key", nil, "no encryption key"},
		{"another key", newBox(t, 2), "does not decrypt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.SecretBox = tc.box
			o.Schedule = []time.Duration{time.Hour} // the retry waits for the right key
			wrong := webhook.New(db, o)
			rep, err := wrong.SealSecrets(ctx)
			if err != nil || rep.Unreadable != 1 || rep.Sealed != 0 {
				t.Fatalf("SealSecrets = %+v, %v; want the endpoint counted unreadable", rep, err)
			}
			event := emit(t, db, webhook.EventHoldExpired, map[string]any{"hold_id": tc.name})
			relay(t, db, wrong)
			if n, err := wrong.RunOnce(ctx); err != nil || n != 1 {
				t.Fatalf("RunOnce = %d, %v; want one attempt recorded", n, err)
			}
			if rc.count() != 0 {
				t.Fatal("a request was sent without a usable secret")
			}
			d := delivery(t, wrong, e.ID, event)
			if d.Status != webhook.StatusPending || len(d.Attempts) != 1 || d.Attempts[0].Error == nil ||
				!strings.Contains(*d.Attempts[0].Error, tc.want) || !strings.Contains(*d.Attempts[0].Error, "LEDGER_ENCRYPTION_KEY") {
				t.Fatalf("delivery %+v; want a pending retry after an attempt that says %q", d, tc.want)
			}
			// The right key sends it (a resend makes it due now).
			if _, err := right.Resend(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
			until(t, right, "the delivery with the right key", func() bool { return rc.count() == 1 })
			if r := rc.requests()[0]; verifySignature(secret, r) != nil {
				t.Fatalf("signature %q", r.header.Get("webhook-signature"))
			}
			rc.mu.Lock()
			rc.got = nil
			rc.mu.Unlock()
		})
	}
}
