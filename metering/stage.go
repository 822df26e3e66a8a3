package metering

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

const moduleName = "metering"

type module struct{}

// Module is the metering stage for the poster. It feeds the wallet module
// (it tells the wallet stage which wallets the batch's events charge), so
// the ledger loads it first and refuses to run without wallet.Module().
func Module() ledger.Module { return module{} }

func (module) Name() string           { return moduleName }
func (module) Feeds() []string        { return []string{wallet.Module().Name()} }
func (module) NewStage() ledger.Stage { return &stage{} }

type aggKey struct {
	meter    MeterID
	customer string
	dims     string
	asset    string
	period   time.Time
}

type walletRow struct {
	id      wallet.WalletID
	created time.Time
}

// stage is the metering state of one batch attempt.
type stage struct {
	customers map[string]bool
	meters    map[string][]*Meter               // by event name
	prices    map[MeterID]map[string]bookPrices // by meter and scope
	books     map[string]Book                   // subscribed customers' books
	wallets   map[[2]string]walletRow           // (customer, asset) → wallet
	aggs      map[aggKey]*aggregate
	system    map[string]wallet.SystemAccounts // by asset, resolved once per batch
	records   []usageRecord
	events    []eventRow
}

type usageRecord struct {
	event   Event
	meter   *Meter
	charge  MeterCharge
	dimsKey string
	step    step
	period  time.Time
	entry   ledger.EntryID
}

type eventRow struct {
	event       Event
	source      string
	received    time.Time
	entry       ledger.EntryID
	misses      []Miss // events.misses; nil when every matched meter counted it
	fingerprint []byte // the usage op's: the event is its own idempotency record
}

// lineColumns are usage lines as the columns of a multi-row insert: the
// usage records of a batch, or the lines folded into its event rows (nil
// for an event whose lines are records).
type lineColumns struct {
	meters, wallets      []*uuid.UUID
	assets, dk, dj, vals []*string
	uniq, q0, q1         []*string
	amounts, overages    []*string
	periods              []*time.Time
}

func (l *lineColumns) grow(n int) {
	l.meters, l.wallets = make([]*uuid.UUID, 0, n), make([]*uuid.UUID, 0, n)
	l.assets, l.dk, l.dj, l.vals = make([]*string, 0, n), make([]*string, 0, n), make([]*string, 0, n), make([]*string, 0, n)
	l.uniq, l.q0, l.q1 = make([]*string, 0, n), make([]*string, 0, n), make([]*string, 0, n)
	l.amounts, l.overages, l.periods = make([]*string, 0, n), make([]*string, 0, n), make([]*time.Time, 0, n)
}

// add appends r's columns, or a row of NULLs for nil.
func (l *lineColumns) add(r *usageRecord) {
	if r == nil {
		l.meters, l.wallets = append(l.meters, nil), append(l.wallets, nil)
		l.assets, l.dk, l.dj, l.vals = append(l.assets, nil), append(l.dk, nil), append(l.dj, nil), append(l.vals, nil)
		l.uniq, l.q0, l.q1 = append(l.uniq, nil), append(l.q0, nil), append(l.q1, nil)
		l.amounts, l.overages, l.periods = append(l.amounts, nil), append(l.overages, nil), append(l.periods, nil)
		return
	}
	text := func(s string) *string { return &s }
	meter := r.meter.ID
	l.meters = append(l.meters, &meter)
	var w *uuid.UUID
	if r.charge.WalletID != nil {
		u := uuid.UUID(*r.charge.WalletID)
		w = &u
	}
	l.wallets = append(l.wallets, w)
	l.assets, l.dk = append(l.assets, text(r.charge.Asset)), append(l.dk, text(r.dimsKey))
	var dims *string
	if len(r.charge.Dimensions) > 0 {
		dims = text(string(r.charge.Dimensions))
	}
	l.dj = append(l.dj, dims)
	if r.meter.Aggregation == UniqueCount {
		l.uniq, l.vals = append(l.uniq, text(r.step.unique)), append(l.vals, nil)
	} else {
		l.uniq, l.vals = append(l.uniq, nil), append(l.vals, text(r.step.value.String()))
	}
	l.q0, l.q1 = append(l.q0, text(r.charge.QuantityBefore.String())), append(l.q1, text(r.charge.QuantityAfter.String()))
	l.amounts, l.overages = append(l.amounts, text(r.charge.Amount.String())), append(l.overages, text(r.charge.Overage.String()))
	p := r.period
	l.periods = append(l.periods, &p)
}

// stageOf is the metering stage of b. A usage op is a ledger.ModuleOp, so
// the poster never applies one in a batch without it.
func stageOf(b ledger.Batch) (*stage, error) {
	s, ok := b.Stage(module{}).(*stage)
	if !ok {
		return nil, fmt.Errorf("metering: the batch has no metering stage; build the ledger with metering.Module()")
	}
	return s, nil
}

// Load reads, for the whole batch: which customers exist, the meters of the
// events' names and their prices, the customers' wallets (handed to the
// wallet stage), and the aggregates the events will move, locked.
func (s *stage) Load(ctx context.Context, b ledger.StageBatch, ops []ledger.Op) error {
	s.customers, s.meters, s.prices = map[string]bool{}, map[string][]*Meter{}, map[MeterID]map[string]bookPrices{}
	s.books = nil
	s.wallets, s.aggs, s.system = map[[2]string]walletRow{}, map[aggKey]*aggregate{}, map[string]wallet.SystemAccounts{}
	var usage []*usageOp
	customers, names := map[string]bool{}, map[string]bool{}
	for _, o := range ops {
		if u, ok := o.(*usageOp); ok {
			usage = append(usage, u)
			customers[u.event.CustomerID] = true
			names[u.event.EventName] = true
		}
	}
	if len(usage) == 0 {
		return nil
	}
	tx := b.Tx()
	// The events' customers and their wallets, in one query: a customer
	// with no row is unknown; one with no wallet in a priced asset is told
	// so per event.
	rows, err := tx.Query(ctx, `SELECT c.id, w.id, w.asset, w.created_at
		FROM customers c LEFT JOIN wallets w ON w.customer_id = c.id WHERE c.id = ANY($1)`, slices.Collect(maps.Keys(customers)))
	if err != nil {
		return fmt.Errorf("load customers: %w", err)
	}
	for rows.Next() {
		var (
			customer string
			id       *uuid.UUID
			asset    *string
			created  *time.Time
		)
		if err := rows.Scan(&customer, &id, &asset, &created); err != nil {
			rows.Close()
			return err
		}
		s.customers[customer] = true
		if id != nil {
			s.wallets[[2]string{customer, *asset}] = walletRow{id: wallet.WalletID(*id), created: *created}
			if err := wallet.Want(b, wallet.WalletID(*id)); err != nil {
				rows.Close()
				return err
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	meters, err := queryMeters(ctx, tx, `WHERE event_name = ANY($1) AND archived_at IS NULL`, slices.Collect(maps.Keys(names)))
	if err != nil {
		return err
	}
	var meterIDs []uuid.UUID
	for _, m := range meters {
		s.meters[m.EventName] = append(s.meters[m.EventName], m)
		meterIDs = append(meterIDs, m.ID)
	}
	if len(meterIDs) > 0 {
		// The books of subscribed customers, read once for the batch, and
		// every price of the books in play: the default book's and theirs.
		scopes := map[string]bool{DefaultBook: true}
		if books := usage[0].svc.books; books != nil {
			if s.books, err = books.Books(ctx, tx, slices.Collect(maps.Keys(customers))); err != nil {
				return fmt.Errorf("load price books: %w", err)
			}
			for _, bk := range s.books {
				for _, sc := range bk.Scopes() {
					scopes[sc] = true // a plan's scope once, however many customers are on it
				}
			}
		}
		prices, err := queryPrices(ctx, tx, &usage[0].svc.specs, `WHERE p.meter_id = ANY($1) AND p.scope = ANY($2)`, meterIDs,
			slices.Collect(maps.Keys(scopes)))
		if err != nil {
			return err
		}
		for _, p := range prices {
			byScope := s.prices[p.MeterID]
			if byScope == nil {
				byScope = map[string]bookPrices{}
				s.prices[p.MeterID] = byScope
			}
			bp := byScope[p.Scope]
			if bp == nil {
				bp = bookPrices{}
				byScope[p.Scope] = bp
			}
			bp.add(priceRow{asset: p.Asset, dims: p.Price.DimensionKey(), effective: p.EffectiveAt, archived: p.ArchivedAt, price: p.Price})
			if _, ok := s.system[p.Asset]; !ok {
				// From the ledger's cache once the asset's first price exists.
				sys, err := usage[0].svc.wallets.System(ctx, p.Asset)
				if err != nil {
					return err
				}
				s.system[p.Asset] = sys
			}
		}
	}
	return s.loadAggregates(ctx, b, usage)
}

// loadAggregates works out every aggregate the batch's events touch and
// reads the existing ones FOR UPDATE, with the unique values in play.
func (s *stage) loadAggregates(ctx context.Context, b ledger.StageBatch, usage []*usageOp) error {
	want := map[aggKey]bool{}
	type uniq struct {
		key   aggKey
		value string
	}
	var uniques []uniq
	for _, u := range usage {
		for _, m := range s.meters[u.event.EventName] {
			if !m.matches(u.event.EventName, u.props) {
				continue
			}
			dims := m.dimensions(u.props)
			ts := s.targets(m, u.event.CustomerID, dims, *u.event.Timestamp)
			st, err := m.value(u.props)
			for _, t := range ts {
				if t.missingWallet {
					continue
				}
				k := aggKey{meter: m.ID, customer: u.event.CustomerID, dims: dimsKey(dims), asset: t.asset, period: t.period}
				want[k] = true
				if err == nil && m.Aggregation == UniqueCount {
					uniques = append(uniques, uniq{k, st.unique})
				}
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	n := len(want)
	meters, customers, dims, assets, periods := make([]uuid.UUID, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]time.Time, 0, n)
	for k := range want {
		meters, customers, dims, assets, periods = append(meters, k.meter), append(customers, k.customer), append(dims, k.dims), append(assets, k.asset), append(periods, k.period)
		s.aggs[k] = &aggregate{seen: map[string]bool{}}
	}
	rows, err := b.Tx().Query(ctx, lockAggregatesSQL, meters, customers, dims, assets, periods)
	if err != nil {
		return fmt.Errorf("lock aggregates: %w", err)
	}
	for rows.Next() {
		var (
			k   aggKey
			agg aggregate
		)
		if err := rows.Scan(&k.meter, &k.customer, &k.dims, &k.asset, &k.period, &agg.quantity, &agg.latestTS, &agg.amount); err != nil {
			rows.Close()
			return err
		}
		k.period = k.period.UTC()
		agg.exists, agg.seen = true, map[string]bool{}
		s.aggs[k] = &agg
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(uniques) == 0 {
		return nil
	}
	un := len(uniques)
	um, uc, ud, ua, up, uv := make([]uuid.UUID, un), make([]string, un), make([]string, un), make([]string, un), make([]time.Time, un), make([]string, un)
	for i, q := range uniques {
		um[i], uc[i], ud[i], ua[i], up[i], uv[i] = q.key.meter, q.key.customer, q.key.dims, q.key.asset, q.key.period, q.value
	}
	rows, err = b.Tx().Query(ctx, loadUniquesSQL,
		um, uc, ud, ua, up, uv)
	if err != nil {
		return fmt.Errorf("load unique values: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k   aggKey
			val string
		)
		if err := rows.Scan(&k.meter, &k.customer, &k.dims, &k.asset, &k.period, &val); err != nil {
			return err
		}
		k.period = k.period.UTC()
		if a := s.aggs[k]; a != nil {
			a.seen[val] = true
		}
	}
	return rows.Err()
}

func (s *stage) aggregate(k aggKey) *aggregate {
	a := s.aggs[k]
	if a == nil {
		a = &aggregate{seen: map[string]bool{}}
		s.aggs[k] = a
	}
	return a
}

func (s *stage) record(b ledger.Batch, r usageRecord) {
	s.records = append(s.records, r)
	b.OnUndo(func() { s.records = s.records[:len(s.records)-1] })
}

func (s *stage) addEvent(b ledger.Batch, e eventRow) {
	s.events = append(s.events, e)
	b.OnUndo(func() { s.events = s.events[:len(s.events)-1] })
}

// Flush writes the events, their usage records, the aggregates and the new
// unique values. A new aggregate row that another process created meanwhile
// makes the upsert fail with a serialization error, and the batch reruns
// with the row loaded.
func (s *stage) Flush(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	// An event one meter counts in one asset carries its usage line on its
	// own row; the others keep one usage record per meter and asset.
	perEvent := make(map[string]int, len(s.events))
	for _, r := range s.records {
		perEvent[r.event.EventID]++
	}
	folded := make(map[string]*usageRecord, len(s.events))
	var records []*usageRecord
	for i := range s.records {
		r := &s.records[i]
		if perEvent[r.event.EventID] == 1 {
			folded[r.event.EventID] = r
		} else {
			records = append(records, r)
		}
	}
	if len(s.events) > 0 {
		write := insertEvents
		if b.Engine() == pg.Postgres {
			write = copyEvents
		}
		if err := write(ctx, tx, s.events, folded); err != nil {
			return err
		}
	}
	if n := len(records); n > 0 {
		ids, customers, ts, entries := make([]string, n), make([]string, n), make([]time.Time, n), make([]uuid.UUID, n)
		var l lineColumns
		l.grow(n)
		for i, r := range records {
			ids[i], customers[i], ts[i], entries[i] = r.event.EventID, r.event.CustomerID, *r.event.Timestamp, uuid.UUID(r.entry)
			l.add(r)
		}
		if _, err := tx.Exec(ctx, insertRecordsSQL,
			ids, l.meters, l.assets, customers, ts, l.dk, l.dj, l.vals, l.uniq, l.q0, l.q1, l.amounts, l.wallets, l.periods, entries, l.overages); err != nil {
			return fmt.Errorf("insert usage records: %w", err)
		}
	}
	var dirty []aggKey
	for k, a := range s.aggs {
		if a.dirty {
			dirty = append(dirty, k)
		}
	}
	if n := len(dirty); n > 0 {
		meters, customers, dims, assets, periods := make([]uuid.UUID, n), make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
		qs, amounts := make([]string, n), make([]string, n)
		latest := make([]*time.Time, n)
		for i, k := range dirty {
			a := s.aggs[k]
			meters[i], customers[i], dims[i], assets[i], periods[i] = k.meter, k.customer, k.dims, k.asset, k.period
			qs[i], amounts[i], latest[i] = a.quantity.String(), a.amount.String(), a.latestTS
		}
		if _, err := tx.Exec(ctx, writeAggregatesSQL,
			meters, customers, dims, assets, periods, qs, latest, amounts); err != nil {
			return fmt.Errorf("write aggregates: %w", err)
		}
	}
	var um []uuid.UUID
	var uc, ud, ua, uv []string
	var up []time.Time
	for _, r := range s.records {
		if r.meter.Aggregation == UniqueCount {
			um, uc, ud, ua, up, uv = append(um, r.meter.ID), append(uc, r.event.CustomerID), append(ud, r.dimsKey), append(ua, r.charge.Asset), append(up, r.period), append(uv, r.step.unique)
		}
	}
	if len(um) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO usage_unique_values (meter_id, customer_id, dims_key, asset, period_start, value)
			SELECT * FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TIMESTAMPTZ[], $6::TEXT[])
			ON CONFLICT DO NOTHING`, um, uc, ud, ua, up, uv); err != nil {
			return fmt.Errorf("insert unique values: %w", err)
		}
	}
	return nil
}

const lockAggregatesSQL = `SELECT a.meter_id, a.customer_id, a.dims_key, a.asset, a.period_start, a.quantity, a.latest_ts, a.amount
		FROM usage_aggregates a
		JOIN unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TIMESTAMPTZ[]) AS u(m, c, d, s, p)
			ON a.meter_id = u.m AND a.customer_id = u.c AND a.dims_key = u.d AND a.asset = u.s AND a.period_start = u.p
		ORDER BY a.meter_id, a.customer_id, a.dims_key, a.asset, a.period_start
		FOR UPDATE OF a`

// loadUniquesSQL finds which unique values a batch's aggregates have seen.
const loadUniquesSQL = `SELECT v.meter_id, v.customer_id, v.dims_key, v.asset, v.period_start, v.value
		FROM usage_unique_values v
		JOIN unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TIMESTAMPTZ[], $6::TEXT[]) AS u(m, c, d, s, p, val)
			ON v.meter_id = u.m AND v.customer_id = u.c AND v.dims_key = u.d AND v.asset = u.s AND v.period_start = u.p AND v.value = u.val`

// insertRecordsSQL writes a batch's usage records.
const insertRecordsSQL = `INSERT INTO usage_records (event_id, meter_id, asset, customer_id, ts, dims_key, dims, value, unique_value,
				quantity_before, quantity_after, amount, wallet_id, period_start, entry_id, overage)
			SELECT u.id, u.m, u.a, u.c, u.ts, u.dk, u.dj::JSONB, u.v::NUMERIC, u.uq, u.q0::NUMERIC, u.q1::NUMERIC, u.amt::NUMERIC, u.w, u.p, u.e, u.o::NUMERIC
			FROM unnest($1::TEXT[], $2::UUID[], $3::TEXT[], $4::TEXT[], $5::TIMESTAMPTZ[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[],
				$10::TEXT[], $11::TEXT[], $12::TEXT[], $13::UUID[], $14::TIMESTAMPTZ[], $15::UUID[], $16::TEXT[])
				AS u(id, m, a, c, ts, dk, dj, v, uq, q0, q1, amt, w, p, e, o)`

// writeAggregatesSQL writes a batch's changed aggregates.
const writeAggregatesSQL = `INSERT INTO usage_aggregates (meter_id, customer_id, dims_key, asset, period_start, quantity, latest_ts, amount)
			SELECT u.m, u.c, u.d, u.s, u.p, u.q::NUMERIC, u.l, u.amt::NUMERIC
			FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TIMESTAMPTZ[], $6::TEXT[], $7::TIMESTAMPTZ[], $8::TEXT[])
				AS u(m, c, d, s, p, q, l, amt)
			ON CONFLICT (meter_id, customer_id, dims_key, asset, period_start)
			DO UPDATE SET quantity = excluded.quantity, latest_ts = excluded.latest_ts, amount = excluded.amount`
