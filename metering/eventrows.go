package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// A batch's event rows, each with its usage line when one meter counted it
// (folded). On PostgreSQL they go in with COPY: the events are most of
// what a usage batch writes, and COPY spares the server the arrays' decoding,
// the unnest and the casts of an INSERT … SELECT (BENCHMARKS.md, "One row
// per event"). CockroachDB gets the INSERT; TestEventRowsBothWays writes
// the same rows both ways on PostgreSQL and compares them.

// eventColumns are the columns of both forms, in order.
var eventColumns = []string{"event_id", "customer_id", "event_name", "ts", "properties", "source", "received_at", "entry_id",
	"misses", "fingerprint", "meter_id", "asset", "dims_key", "dims", "value", "unique_value", "quantity_before",
	"quantity_after", "amount", "overage", "wallet_id", "period_start"}

// copyEvents writes events with COPY.
func copyEvents(ctx context.Context, tx pgx.Tx, events []eventRow, folded map[string]*usageRecord) error {
	rows := make([][]any, len(events))
	for i, e := range events {
		misses, err := missesJSON(e)
		if err != nil {
			return err
		}
		row := make([]any, 0, len(eventColumns))
		row = append(row, e.event.EventID, e.event.CustomerID, e.event.EventName, *e.event.Timestamp,
			jsonOrNull(e.event.Properties), e.source, e.received, uuid.UUID(e.entry), misses, e.fingerprint)
		if r := folded[e.event.EventID]; r != nil {
			var w, val, uniq, dims any
			if r.charge.WalletID != nil {
				w = uuid.UUID(*r.charge.WalletID)
			}
			if r.meter.Aggregation == UniqueCount {
				uniq = r.step.unique
			} else {
				val = numeric(r.step.value)
			}
			if len(r.charge.Dimensions) > 0 {
				dims = []byte(r.charge.Dimensions)
			}
			row = append(row, r.meter.ID, r.charge.Asset, r.dimsKey, dims, val, uniq,
				numeric(r.charge.QuantityBefore), numeric(r.charge.QuantityAfter),
				numeric(r.charge.Amount.Decimal()), numeric(r.charge.Overage.Decimal()), w, r.period)
		} else {
			row = append(row, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil)
		}
		rows[i] = row
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy events: %w", err)
	}
	return nil
}

// numeric is d exactly, as PostgreSQL's NUMERIC: its coefficient and
// exponent, never a float.
func numeric(d decimal.Decimal) pgtype.Numeric {
	return pgtype.Numeric{Int: d.Coefficient(), Exp: d.Exponent(), Valid: true}
}

// jsonOrNull is raw JSON for a JSONB column, or SQL NULL when empty.
func jsonOrNull(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return []byte(raw)
}

// missesJSON is the event's misses as JSONB, or NULL.
func missesJSON(e eventRow) (any, error) {
	if len(e.misses) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(e.misses)
	if err != nil {
		return nil, fmt.Errorf("event %s misses: %w", e.event.EventID, err)
	}
	return raw, nil
}

// insertEvents writes events with one INSERT of unnested arrays.
func insertEvents(ctx context.Context, tx pgx.Tx, events []eventRow, folded map[string]*usageRecord) error {
	n := len(events)
	ids, customers, names, sources, props := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	ts, received := make([]time.Time, n), make([]time.Time, n)
	entries := make([]uuid.UUID, n)
	misses := make([]*string, n)
	fps := make([][]byte, n)
	var l lineColumns
	l.grow(n)
	for i, e := range events {
		ids[i], customers[i], names[i], sources[i] = e.event.EventID, e.event.CustomerID, e.event.EventName, e.source
		ts[i], received[i], entries[i], fps[i] = *e.event.Timestamp, e.received, uuid.UUID(e.entry), e.fingerprint
		if len(e.event.Properties) > 0 {
			p := string(e.event.Properties)
			props[i] = &p
		}
		m, err := missesJSON(e)
		if err != nil {
			return err
		}
		if m != nil {
			text := string(m.([]byte))
			misses[i] = &text
		}
		l.add(folded[e.event.EventID])
	}
	if _, err := tx.Exec(ctx, insertEventsSQL, ids, customers, names, ts, props, sources, received, entries, misses, fps,
		l.meters, l.assets, l.dk, l.dj, l.vals, l.uniq, l.q0, l.q1, l.amounts, l.overages, l.wallets, l.periods); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}

// insertEventsSQL writes a batch's events.
const insertEventsSQL = `INSERT INTO events (event_id, customer_id, event_name, ts, properties, source, received_at, entry_id, misses, fingerprint,
				meter_id, asset, dims_key, dims, value, unique_value, quantity_before, quantity_after, amount, overage, wallet_id, period_start)
			SELECT u.id, u.c, u.n, u.ts, u.p::JSONB, u.s, u.r, u.e, u.m::JSONB, u.fp,
				u.mt, u.a, u.dk, u.dj::JSONB, u.v::NUMERIC, u.uq, u.q0::NUMERIC, u.q1::NUMERIC, u.amt::NUMERIC, u.o::NUMERIC, u.w, u.per
			FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TIMESTAMPTZ[], $5::TEXT[], $6::TEXT[], $7::TIMESTAMPTZ[], $8::UUID[], $9::TEXT[], $10::BYTEA[],
				$11::UUID[], $12::TEXT[], $13::TEXT[], $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::TEXT[], $19::TEXT[], $20::TEXT[],
				$21::UUID[], $22::TIMESTAMPTZ[])
				AS u(id, c, n, ts, p, s, r, e, m, fp, mt, a, dk, dj, v, uq, q0, q1, amt, o, w, per)`
