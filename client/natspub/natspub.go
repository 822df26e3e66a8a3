// Package natspub publishes usage events to the ledger over NATS
// JetStream. It is apart from package client so that apps sending events
// over HTTP only do not pull in nats.go.
package natspub

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditledger/creditledger/client"
)

// DefaultPrefix is the ledger's default subject prefix
// (LEDGER_NATS_SUBJECT_PREFIX): events go to <prefix>.<customer_id>.
const DefaultPrefix = "ledger.events"

// Publisher sends events on one NATS connection.
type Publisher struct {
	js     jetstream.JetStream
	prefix string
}

// New makes a publisher on nc; prefix "" is DefaultPrefix.
func New(nc *nats.Conn, prefix string) (*Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Publisher{js: js, prefix: prefix}, nil
}

// Publish sends one event on <prefix>.<customer_id> with the Nats-Msg-Id
// header set to its event id, so the stream drops a duplicate sent within
// its window (and the ledger any later one), and waits for the stream's
// acknowledgement: an error means it may not be stored, and publishing it
// again is safe.
func (p *Publisher) Publish(ctx context.Context, e client.Event) error {
	if e.EventID == "" || e.CustomerID == "" {
		return errors.New("natspub: event_id and customer_id are required")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = p.js.Publish(ctx, p.prefix+"."+e.CustomerID, b, jetstream.WithMsgID(e.EventID))
	return err
}
