package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
)

// IngestOptions say where a call's events come from and who may send them.
type IngestOptions struct {
	Source string // "http", "nats": recorded with each event and rejection
	// Customer, if set, is the only customer the sender may send events
	// for (an ingest key bound to one customer); an event naming another
	// is rejected with CodeCustomerNotAllowed.
	Customer string
}

// EventStatus is what became of one event of an ingest call.
type EventStatus int

const (
	// EventAccepted: applied now.
	EventAccepted EventStatus = iota + 1
	// EventDuplicate: applied before (its id is in the journal).
	EventDuplicate
	// EventRejected: refused for good, with the reason recorded in
	// event_rejections. Sending it again unchanged fails the same way.
	EventRejected
	// EventFailed: neither applied nor refused, because the database could
	// not take it (pg.KindOf(Err) says whether it was unreachable or
	// an error nobody classified). Send it again.
	EventFailed
)

func (s EventStatus) String() string {
	switch s {
	case EventAccepted:
		return "accepted"
	case EventDuplicate:
		return "duplicate"
	case EventRejected:
		return "rejected"
	case EventFailed:
		return "failed"
	}
	return fmt.Sprintf("EventStatus(%d)", int(s))
}

// EventResult is one event's outcome.
type EventResult struct {
	Status    EventStatus
	Rejection *EventRejection // with EventRejected
	Err       error           // with EventFailed
}

// IngestResult is what an ingest call did with its events, as POST
// /v1/events answers it.
type IngestResult struct {
	Accepted   int              `json:"accepted"`
	Duplicates int              `json:"duplicates"`
	Rejected   []EventRejection `json:"rejected"`
}

// Ingest applies a batch of raw events and sums up what became of them. An
// error means some events could be neither applied nor refused (the
// database could not take them): the caller sends the whole batch again,
// which is safe, since applied events come back as duplicates.
func (s *Service) Ingest(ctx context.Context, raws []json.RawMessage, opts IngestOptions) (IngestResult, error) {
	each, err := s.IngestEach(ctx, raws, opts)
	if err != nil {
		return IngestResult{}, err
	}
	res := IngestResult{Rejected: []EventRejection{}}
	var failed error
	for _, r := range each {
		switch r.Status {
		case EventAccepted:
			res.Accepted++
		case EventDuplicate:
			res.Duplicates++
		case EventRejected:
			res.Rejected = append(res.Rejected, *r.Rejection)
		case EventFailed:
			if failed == nil || pg.KindOf(r.Err) == fault.Unavailable {
				failed = r.Err
			}
		}
	}
	if failed != nil {
		return res, fmt.Errorf("ingest: %w", failed)
	}
	sort.SliceStable(res.Rejected, func(i, j int) bool { return *res.Rejected[i].Index < *res.Rejected[j].Index })
	return res, nil
}

// IngestEach applies a batch of raw events, the same way for HTTP and NATS,
// and returns one result per event, in order. Each event is accepted, a
// duplicate, rejected with a reason that is recorded (once, however often
// the same event is sent again), or failed. One event's fate never decides
// another's: a bad event is refused alone, whatever the ledger found wrong
// with it. The error is for a call that could not start at all.
func (s *Service) IngestEach(ctx context.Context, raws []json.RawMessage, opts IngestOptions) ([]EventResult, error) {
	received := s.l.Now()
	out := make([]EventResult, len(raws))
	type item struct {
		op    *usageOp
		p     *ledger.Pending
		index int
	}
	var (
		items    []item
		rejected []rejectionRow
		rowOf    []int // index in raws of each rejected row
	)
	// refuse records event i as refused: for why, eventID and customer, as
	// far as they could be read.
	refuse := func(i int, why *ledger.Rejection, eventID, customer string) {
		idx := i
		rej := EventRejection{Index: &idx, EventID: storableID(eventID), Code: why.Code, Detail: why.Detail}
		out[i] = EventResult{Status: EventRejected, Rejection: &rej}
		rejected = append(rejected, rejectionRow{rej: rej, raw: raws[i], customer: customer})
		rowOf = append(rowOf, i)
	}
	for i, raw := range raws {
		e, props, err := ParseEvent(raw, received)
		if err != nil {
			refuse(i, ledger.DataRefusal(err), guessID(raw), guessCustomer(raw))
			continue
		}
		if opts.Customer != "" && e.CustomerID != opts.Customer {
			refuse(i, ledger.Reject(CodeCustomerNotAllowed, "this key may only send events for customer %q", opts.Customer),
				e.EventID, e.CustomerID)
			continue
		}
		op := &usageOp{svc: s, event: e, props: props, source: opts.Source, received: received}
		p, err := s.l.Enqueue(ctx, op)
		if err != nil {
			// Nothing of this one or the ones after it reached the poster.
			for j := i; j < len(raws); j++ {
				out[j] = EventResult{Status: EventFailed, Err: err}
			}
			break
		}
		items = append(items, item{op: op, p: p, index: i})
	}
	for _, it := range items {
		res, err := it.p.Wait(ctx)
		var (
			rej   *ledger.Rejection
			event = it.op.event
		)
		switch {
		case err == nil && res.Replayed:
			out[it.index] = EventResult{Status: EventDuplicate}
		case err == nil:
			out[it.index] = EventResult{Status: EventAccepted}
		case errors.As(err, &rej):
			// Refused by metering's rules, a counter limit, or data the
			// database would not store: never recorded under its key.
			refuse(it.index, rej, event.EventID, event.CustomerID)
		case errors.Is(err, ledger.ErrIdempotencyConflict):
			refuse(it.index, ledger.Reject(CodeConflictingEvent, "an event with this id and other content was applied before"),
				event.EventID, event.CustomerID)
		default:
			out[it.index] = EventResult{Status: EventFailed, Err: err}
		}
	}
	if err := s.recordRejections(ctx, opts.Source, received, rejected); err != nil {
		// Not recorded, not done: the sender must send them again.
		for _, i := range rowOf {
			out[i] = EventResult{Status: EventFailed, Err: err}
		}
	}
	s.observer.Ingested(opts.Source, out)
	return out, nil
}

// guessCustomer is guessID's twin for the customer, checked as it is.
func guessCustomer(raw []byte) string {
	var probe struct {
		CustomerID string `json:"customer_id"`
	}
	if json.Unmarshal(raw, &probe) == nil && text.Check("customer_id", probe.CustomerID, 128) == nil {
		return probe.CustomerID
	}
	return ""
}
