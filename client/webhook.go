package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook verification errors.
var (
	ErrWebhookHeaders   = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrWebhookTimestamp = errors.New("webhook: timestamp outside the tolerance")
	ErrWebhookSignature = errors.New("webhook: no signature matches")
	ErrWebhookSecret    = errors.New("webhook: secret is not whsec_ and base64")
)

// VerifyWebhook checks a webhook the ledger sent, as Standard Webhooks
// specifies: the webhook-signature header holds one or more space-separated
// "v1,<base64 HMAC-SHA256>" signatures of "<webhook-id>.<webhook-timestamp>.<body>",
// keyed with the bytes the secret ("whsec_" and base64) encodes; one
// matching signature suffices (during a secret rotation the ledger signs
// with both secrets). The timestamp must be within tolerance of now, which
// stops replays (0: 5 minutes). body must be the raw bytes received,
// before any JSON decoding.
func VerifyWebhook(secret string, headers http.Header, body []byte, tolerance time.Duration) error {
	return verifyWebhookAt(secret, headers, body, tolerance, time.Now())
}

func verifyWebhookAt(secret string, headers http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return ErrWebhookSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return ErrWebhookSecret
	}
	id, ts, sigs := headers.Get("webhook-id"), headers.Get("webhook-timestamp"), headers.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return ErrWebhookHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrWebhookTimestamp
	}
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrWebhookTimestamp
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrWebhookSignature
}
