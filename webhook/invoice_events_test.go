package webhook_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/creditledger/creditledger/webhook"
)

// An invoice's life is public: endpoints may subscribe to invoice.paid and
// invoice.voided, and each is delivered only where subscribed.
func TestInvoiceLifeEventsDelivered(t *testing.T) {
	db := openDB(t)
	svc := webhook.New(db, testOptions(t))
	rc := newReceiver(t, nil)
	newEndpoint(t, svc, rc.url("/life"), webhook.EventInvoicePaid, webhook.EventInvoiceVoided)
	newEndpoint(t, svc, rc.url("/created"), webhook.EventInvoiceCreated)
	emit(t, db, webhook.EventInvoicePaid, map[string]any{"status": "paid"})
	emit(t, db, webhook.EventInvoiceVoided, map[string]any{"status": "void"})
	relay(t, db, svc)
	until(t, svc, "two deliveries", func() bool { return rc.count() >= 2 })
	time.Sleep(20 * time.Millisecond)
	if _, err := svc.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	per := map[string][]string{}
	for _, r := range rc.requests() {
		var b struct{ Type string }
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		per[r.endpoint] = append(per[r.endpoint], b.Type)
	}
	if got := slices.Sorted(slices.Values(per["/life"])); !slices.Equal(got, []string{webhook.EventInvoicePaid, webhook.EventInvoiceVoided}) {
		t.Errorf("the subscribed endpoint got %v", got)
	}
	if len(per["/created"]) != 0 {
		t.Errorf("an endpoint subscribed to invoice.created got %v", per["/created"])
	}
}
