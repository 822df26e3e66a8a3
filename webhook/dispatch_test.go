package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/webhook"
)

func TestDeliverySignedAndShaped(t *testing.T) {
	db := openDB(t)
	svc := webhook.New(db, testOptions(t))
	rc := newReceiver(t, nil)
	e, secret := newEndpoint(t, svc, rc.url("/hook"))

	payload := map[string]any{"threshold": 80, "percent_used": "80", "available": "20", "reference": "100"}
	id := emit(t, db, webhook.EventThresholdReached, payload)
	emit(t, db, "ledger.internal_thing", map[string]any{"x": 1}) // not a public event type
	relay(t, db, svc)
	before := time.Now().Unix()
	until(t, svc, "the delivery", func() bool { return rc.count() >= 1 })

	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1 (an internal topic was sent?)", len(got))
	}
	r := got[0]
	if err := verifySignature(secret, r); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if r.id() != id.String() {
		t.Errorf("webhook-id %q, want the outbox id %s", r.id(), id)
	}
	ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
	if err != nil || ts < before-5 || ts > time.Now().Unix()+5 {
		t.Errorf("webhook-timestamp %q is not the current unix time", r.header.Get("webhook-timestamp"))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("User-Agent") == "" {
		t.Error("no User-Agent")
	}

	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"created_at", "data", "id", "type"}) {
		t.Fatalf("body keys %v, want created_at, data, id, type", keys)
	}
	var shape struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		CreatedAt time.Time      `json:"created_at"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.body, &shape); err != nil {
		t.Fatal(err)
	}
	if shape.ID != r.id() || shape.Type != webhook.EventThresholdReached || shape.CreatedAt.IsZero() ||
		shape.Data["threshold"] != float64(80) || shape.Data["available"] != "20" {
		t.Fatalf("body %s", r.body)
	}

	d := delivery(t, svc, e.ID, id)
	if d.Status != webhook.StatusSucceeded || d.AttemptCount != 1 || d.NextAttemptAt != nil ||
		d.LastStatusCode == nil || *d.LastStatusCode != 200 || len(d.Attempts) != 1 || d.Attempts[0].Error != nil {
		t.Fatalf("delivery %+v", d)
	}
	if n := len(deliveries(t, svc, e.ID)); n != 1 {
		t.Fatalf("%d deliveries, want 1: the internal topic was fanned out", n)
	}
	// The relay already processed the message: a second relay fans out nothing.
	relay(t, db, svc)
	if n := len(deliveries(t, svc, e.ID)); n != 1 {
		t.Fatalf("%d deliveries after a second relay, want 1", n)
	}
}

func TestRetriesThenSuccessAndResend(t *testing.T) {
	db := openDB(t)
	svc := webhook.New(db, testOptions(t))
	rc := newReceiver(t, func(r *http.Request, n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	e, secret := newEndpoint(t, svc, rc.url("/flaky"))
	id := emit(t, db, webhook.EventTopupSucceeded, map[string]any{"topup_id": "t1", "amount": "10"})
	relay(t, db, svc)
	until(t, svc, "three attempts", func() bool { return rc.count() >= 3 })

	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for i, r := range got {
		if r.id() != id.String() {
			t.Errorf("attempt %d: webhook-id %q, want %s", i+1, r.id(), id)
		}
		if !bytes.Equal(r.body, got[0].body) {
			t.Errorf("attempt %d sent other bytes:\n%s\n%s", i+1, r.body, got[0].body)
		}
		if err := verifySignature(secret, r); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
	d := delivery(t, svc, e.ID, id)
	if d.Status != webhook.StatusSucceeded || d.AttemptCount != 3 || len(d.Attempts) != 3 {
		t.Fatalf("delivery %+v", d)
	}
	if codes := attemptCodes(d); !slices.Equal(codes, []int{500, 500, 204}) {
		t.Fatalf("attempt status codes %v, want [500 500 204]", codes)
	}
	if d.Attempts[0].Error == nil || d.Attempts[2].Error != nil || d.LastError != nil {
		t.Fatalf("attempt errors: %+v", d)
	}
	if ep, err := svc.Endpoint(context.Background(), e.ID); err != nil || ep.FailingSince != nil {
		t.Fatalf("a success must clear the failing state: %+v %v", ep, err)
	}

	// Resend: sent again at once, with the same id; the log keeps it all.
	r, err := svc.Resend(context.Background(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != webhook.StatusPending || r.NextAttemptAt == nil {
		t.Fatalf("resent delivery %+v, want pending and due", r)
	}
	until(t, svc, "the resend", func() bool { return rc.count() >= 4 })
	if last := rc.requests()[3]; last.id() != id.String() || !bytes.Equal(last.body, got[0].body) {
		t.Fatalf("the resend was not the same event: %s %s", last.id(), last.body)
	}
	d = delivery(t, svc, e.ID, id)
	if d.Status != webhook.StatusSucceeded || d.AttemptCount != 4 || !slices.Equal(attemptCodes(d), []int{500, 500, 204, 204}) {
		t.Fatalf("after the resend: %+v", d)
	}
	if _, err := svc.Resend(context.Background(), uuid.New()); !errors.Is(err, fault.NotFound) {
		t.Fatalf("resend of nothing: %v, want fault.NotFound", err)
	}
}

func attemptCodes(d webhook.Delivery) []int {
	var codes []int
	for _, a := range d.Attempts {
		c := 0
		if a.StatusCode != nil {
			c = *a.StatusCode
		}
		codes = append(codes, c)
	}
	return codes
}

// The default schedule, walked with a clock that jumps: eight attempts, the
// waits within ±20% of 5s, 5m, 30m, 2h, 5h, 10h, 10h, then failed.
func TestScheduleExhausted(t *testing.T) {
	db := openDB(t)
	clk := newClock()
	opts := testOptions(t)
	opts.Schedule, opts.Now = nil, clk.Now
	svc := webhook.New(db, opts)
	rc := newReceiver(t, func(*http.Request, int) int { return http.StatusServiceUnavailable })
	e, _ := newEndpoint(t, svc, rc.url("/down"))
	id := emit(t, db, webhook.EventGrantExpired, map[string]any{"grant_id": "g"})
	relay(t, db, svc)

	schedule := webhook.DefaultSchedule()
	for i := range len(schedule) + 1 {
		n, err := svc.RunOnce(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("attempt %d: RunOnce = %d, %v", i+1, n, err)
		}
		d := delivery(t, svc, e.ID, id)
		if d.AttemptCount != i+1 {
			t.Fatalf("attempt %d: attempt_count %d", i+1, d.AttemptCount)
		}
		if i == len(schedule) {
			if d.Status != webhook.StatusFailed || d.NextAttemptAt != nil {
				t.Fatalf("after the schedule: %+v, want failed", d)
			}
			break
		}
		wait := d.NextAttemptAt.Sub(*d.LastAttemptAt)
		lo, hi := schedule[i]*8/10, schedule[i]*12/10
		if d.Status != webhook.StatusPending || wait < lo || wait > hi {
			t.Fatalf("attempt %d: %s, next in %s, want pending, next in %s to %s", i+1, d.Status, wait, lo, hi)
		}
		// Not due before its time.
		if n, _ := svc.RunOnce(context.Background()); n != 0 {
			t.Fatalf("attempt %d: sent again before the retry was due", i+1)
		}
		clk.Add(hi + time.Second)
	}
	if rc.count() != len(schedule)+1 {
		t.Fatalf("receiver got %d requests, want %d", rc.count(), len(schedule)+1)
	}
	// A day and a bit of failures is not yet five days: still enabled.
	ep, err := svc.Endpoint(context.Background(), e.ID)
	if err != nil || ep.DisabledAt != nil || ep.FailingSince == nil {
		t.Fatalf("endpoint %+v %v, want enabled and failing", ep, err)
	}
	if n, _ := svc.RunOnce(context.Background()); n != 0 {
		t.Fatal("a failed delivery was sent again")
	}
}

func TestEndpointDisabledAfterFailingForLong(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	clk := newClock()
	opts := testOptions(t)
	opts.Now, opts.DisableAfter = clk.Now, time.Hour
	opts.Schedule = []time.Duration{10 * time.Minute, 10 * time.Minute, 10 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	svc := webhook.New(db, opts)
	var healthy sync.Mutex // held while the receiver is down
	down := true
	rc := newReceiver(t, func(*http.Request, int) int {
		healthy.Lock()
		defer healthy.Unlock()
		if down {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	e, _ := newEndpoint(t, svc, rc.url("/dying"))
	first := emit(t, db, webhook.EventHoldExpired, map[string]any{"hold_id": "h"})
	relay(t, db, svc)

	for i := 0; ; i++ {
		if n, err := svc.RunOnce(ctx); err != nil || n != 1 {
			t.Fatalf("round %d: RunOnce = %d, %v", i, n, err)
		}
		ep, err := svc.Endpoint(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ep.DisabledAt != nil {
			if i < 4 || ep.DisabledReason == nil || !strings.Contains(*ep.DisabledReason, "HTTP 502") {
				t.Fatalf("disabled in round %d: %+v", i, ep)
			}
			break
		}
		if i > 6 {
			t.Fatal("never disabled")
		}
		clk.Add(15 * time.Minute)
	}

	// Disabled: nothing is sent, new events are not fanned out, resends
	// are refused.
	clk.Add(time.Hour)
	if n, _ := svc.RunOnce(ctx); n != 0 {
		t.Fatal("a disabled endpoint was sent to")
	}
	second := emit(t, db, webhook.EventHoldExpired, map[string]any{"hold_id": "h2"})
	relay(t, db, svc)
	for _, d := range deliveries(t, svc, e.ID) {
		if d.EventID == second {
			t.Fatal("an event was fanned out to a disabled endpoint")
		}
	}
	d := delivery(t, svc, e.ID, first)
	if _, err := svc.Resend(ctx, d.ID); !isConflict(err, webhook.CodeEndpointInactive) {
		t.Fatalf("resend to a disabled endpoint: %v, want a conflict %s", err, webhook.CodeEndpointInactive)
	}

	// Enabled again, with the receiver back: the pending delivery goes out
	// and the failing state is clean.
	healthy.Lock()
	down = false
	healthy.Unlock()
	if _, err := svc.EnableEndpoint(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	until(t, svc, "the delivery after enabling", func() bool {
		return delivery(t, svc, e.ID, first).Status == webhook.StatusSucceeded
	})
	if ep, _ := svc.Endpoint(ctx, e.ID); ep.DisabledAt != nil || ep.FailingSince != nil || ep.DisabledReason != nil {
		t.Fatalf("endpoint after enabling and a success: %+v", ep)
	}

	// Deleted: resend is refused the same way.
	if _, err := svc.DeleteEndpoint(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Resend(ctx, d.ID); !isConflict(err, webhook.CodeEndpointInactive) {
		t.Fatalf("resend to a deleted endpoint: %v, want a conflict %s", err, webhook.CodeEndpointInactive)
	}
	if _, _, err := svc.Deliveries(ctx, e.ID, webhook.DeliveryQuery{}); !errors.Is(err, fault.NotFound) {
		t.Fatalf("deliveries of a deleted endpoint: %v, want fault.NotFound", err)
	}
}

func TestEventTypesFilter(t *testing.T) {
	db := openDB(t)
	svc := webhook.New(db, testOptions(t))
	rc := newReceiver(t, nil)
	topups, _ := newEndpoint(t, svc, rc.url("/topups"), webhook.EventTopupSucceeded, webhook.EventTopupFailed)
	all, _ := newEndpoint(t, svc, rc.url("/all"))
	if !slices.Equal(topups.EventTypes, []string{webhook.EventTopupSucceeded, webhook.EventTopupFailed}) || len(all.EventTypes) != 0 {
		t.Fatalf("event types %v and %v", topups.EventTypes, all.EventTypes)
	}
	emit(t, db, webhook.EventTopupSucceeded, map[string]any{})
	emit(t, db, webhook.EventInvoiceCreated, map[string]any{})
	relay(t, db, svc)
	until(t, svc, "three deliveries", func() bool { return rc.count() >= 3 })
	time.Sleep(20 * time.Millisecond)
	if _, err := svc.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	per := map[string][]string{}
	for _, r := range rc.requests() {
		var b struct{ Type string }
		_ = json.Unmarshal(r.body, &b)
		per[r.endpoint] = append(per[r.endpoint], b.Type)
	}
	if !slices.Equal(per["/topups"], []string{webhook.EventTopupSucceeded}) {
		t.Errorf("filtered endpoint got %v", per["/topups"])
	}
	if got := slices.Sorted(slices.Values(per["/all"])); !slices.Equal(got, []string{webhook.EventInvoiceCreated, webhook.EventTopupSucceeded}) {
		t.Errorf("unfiltered endpoint got %v", got)
	}

	if _, _, err := svc.CreateEndpoint(context.Background(), webhook.NewEndpoint{
		URL: rc.url("/x"), EventTypes: []string{webhook.EventDepleted, "wallet.exploded"},
	}); !isInvalid(err, "event_types.1") {
		t.Fatalf("unknown event type: %v", err)
	}
}

func isInvalid(err error, field string) bool {
	fe, ok := fault.As(err)
	return ok && fe.Kind == fault.Invalid && fe.Field == field
}

func isConflict(err error, code string) bool {
	fe, ok := fault.As(err)
	return ok && fe.Kind == fault.Conflict && fe.Code == code
}

// Two dispatchers (two Services, as two processes would have) on one
// database: every delivery reaches its receiver exactly once, each
// endpoint's in the order of its events and never two at a time.
func TestConcurrentDispatchers(t *testing.T) {
	db := openDB(t)
	opts := testOptions(t)
	opts.Concurrency = 3
	a, b := webhook.New(db, opts), webhook.New(db, opts)
	rc := newReceiver(t, func(*http.Request, int) int {
		time.Sleep(200 * time.Microsecond) // widen the window for overlap
		return http.StatusOK
	})
	const endpoints, events = 5, 40
	for i := range endpoints {
		newEndpoint(t, a, rc.url("/e"+strconv.Itoa(i)))
	}
	var ids []string
	for i := range events {
		ids = append(ids, emit(t, db, webhook.EventDepleted, map[string]any{"n": i}).String())
	}
	relay(t, db, a)

	// One runs the production loop, the other claims round by round and
	// counts what it sent, to show both took part.
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg    sync.WaitGroup
		bSent int
	)
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() {
		for ctx.Err() == nil {
			n, err := b.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				t.Errorf("b: %v", err)
				return
			}
			bSent += n
			if n == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for rc.count() < endpoints*events && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a duplicate would arrive now
	cancel()
	wg.Wait()
	t.Logf("dispatcher b sent %d of %d", bSent, endpoints*events)
	if bSent == 0 || bSent == endpoints*events {
		t.Errorf("dispatcher b sent %d of %d: the two did not share the work", bSent, endpoints*events)
	}

	got := map[string][]string{}
	for _, r := range rc.requests() {
		got[r.endpoint] = append(got[r.endpoint], r.id())
	}
	for i := range endpoints {
		path := "/e" + strconv.Itoa(i)
		if !slices.Equal(got[path], ids) {
			t.Errorf("%s got %d requests, want each of %d events once, in order", path, len(got[path]), events)
		}
		if rc.maxIn[path] > 1 {
			t.Errorf("%s had %d requests in flight at once", path, rc.maxIn[path])
		}
	}
}

func TestTimeoutIsAFailure(t *testing.T) {
	db := openDB(t)
	opts := testOptions(t)
	opts.Timeout = 100 * time.Millisecond
	svc := webhook.New(db, opts)
	rc := newReceiver(t, func(r *http.Request, n int) int {
		if n == 1 {
			select { // hang until the sender gives up
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
		return http.StatusOK
	})
	e, _ := newEndpoint(t, svc, rc.url("/slow"))
	id := emit(t, db, webhook.EventOverageStarted, map[string]any{})
	relay(t, db, svc)
	until(t, svc, "the retry", func() bool { return delivery(t, svc, e.ID, id).Status == webhook.StatusSucceeded })
	d := delivery(t, svc, e.ID, id)
	if len(d.Attempts) != 2 {
		t.Fatalf("attempts %+v, want 2", d.Attempts)
	}
	first := d.Attempts[0]
	if first.StatusCode != nil || first.Error == nil || !strings.Contains(*first.Error, "timeout") {
		t.Fatalf("first attempt %+v, want a timeout without a status", first)
	}
	if first.DurationMS < 100 || first.DurationMS > 2000 {
		t.Fatalf("first attempt took %dms, want about the 100ms timeout", first.DurationMS)
	}
}

// The dial-time guard: an endpoint whose host name resolves to loopback
// (created where private targets were allowed, as after a DNS change) is
// refused at connection time by a dispatcher that does not allow them.
func TestSendTimeGuard(t *testing.T) {
	db := openDB(t)
	lax := webhook.New(db, testOptions(t))
	opts := testOptions(t)
	opts.AllowPrivate = false
	strict := webhook.New(db, opts)
	rc := newReceiver(t, nil)
	_, port, err := net.SplitHostPort(rc.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	e, _ := newEndpoint(t, lax, "http://localhost:"+port+"/private")
	id := emit(t, db, webhook.EventDepleted, map[string]any{})
	relay(t, db, strict)

	if n, err := strict.RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	d := delivery(t, strict, e.ID, id)
	if len(d.Attempts) != 1 || d.Attempts[0].Error == nil || d.Attempts[0].StatusCode != nil {
		t.Fatalf("attempts %+v", d.Attempts)
	}
	if msg := *d.Attempts[0].Error; !strings.Contains(msg, "blocked") || !strings.Contains(msg, "loopback") {
		t.Fatalf("error %q should say the loopback address was blocked", msg)
	}
	if rc.count() != 0 {
		t.Fatalf("the receiver got %d requests", rc.count())
	}
}

// A resend while an attempt is in flight fences that attempt off: its
// outcome is logged but no longer sets the delivery's state, and nobody
// sends the delivery again until the endpoint's lease is given back.
func TestResendDuringAttemptIsFenced(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	svc, other := webhook.New(db, testOptions(t)), webhook.New(db, testOptions(t))
	arrived, release := make(chan struct{}), make(chan struct{})
	rc := newReceiver(t, func(_ *http.Request, n int) int {
		if n == 1 {
			close(arrived)
			<-release
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	e, _ := newEndpoint(t, svc, rc.url("/fenced"))
	id := emit(t, db, webhook.EventTopupFailed, map[string]any{})
	relay(t, db, svc)

	done := make(chan error, 1)
	go func() {
		_, err := svc.RunOnce(ctx)
		done <- err
	}()
	<-arrived
	d := delivery(t, svc, e.ID, id)
	if _, err := svc.Resend(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := other.RunOnce(ctx); err != nil || n != 0 {
		t.Fatalf("another dispatcher sent %d while the endpoint was leased (%v)", n, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	d = delivery(t, svc, e.ID, id)
	if d.Status != webhook.StatusPending || d.AttemptCount != 1 || d.LastStatusCode != nil ||
		!slices.Equal(attemptCodes(d), []int{500}) {
		t.Fatalf("after the fenced attempt: %+v", d)
	}
	until(t, other, "the resend", func() bool { return delivery(t, svc, e.ID, id).Status == webhook.StatusSucceeded })
	if d := delivery(t, svc, e.ID, id); d.AttemptCount != 2 || !slices.Equal(attemptCodes(d), []int{500, 200}) {
		t.Fatalf("after the resend: %+v", d)
	}
}
