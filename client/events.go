package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Event is one usage event. EventID identifies it: the ledger applies an
// id once, so sending an event again (after a timeout, say) is safe.
type Event struct {
	EventID    string          `json:"event_id"`
	CustomerID string          `json:"customer_id"`
	EventName  string          `json:"event_name"`
	Timestamp  *time.Time      `json:"timestamp,omitempty"` // default: when the ledger received it
	Properties json.RawMessage `json:"properties,omitempty"`
}

// EventsResult says what became of a batch: events applied, events seen
// before, and the refused ones with their reasons.
type EventsResult struct {
	Accepted   int              `json:"accepted"`
	Duplicates int              `json:"duplicates"`
	Rejected   []EventRejection `json:"rejected"`
}

// EventRejection is why one event of a batch was refused.
type EventRejection struct {
	Index   *int   `json:"index,omitempty"`
	EventID string `json:"event_id,omitempty"`
	Code    string `json:"code"`
	Detail  string `json:"detail"`
}

// SendEvents posts a batch of usage events over HTTP (an ingest or admin
// key). A 503 is retried with the whole batch, which is safe: applied
// events come back as duplicates.
func (c *Client) SendEvents(ctx context.Context, events ...Event) (EventsResult, error) {
	var out EventsResult
	err := c.do(ctx, http.MethodPost, "/v1/events", nil, "", map[string]any{"events": events}, &out)
	return out, err
}
