package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/jackc/pgx/v5"

	"github.com/google/uuid"
)

// model is the in-memory ledger the property test compares against: per
// account posted balance and held amount, and open holds.
type model struct {
	posted map[AccountID]Amount // on the normal side
	held   map[AccountID]Amount
	holds  map[HoldID][]HoldLeg
}

func (m *model) available(id AccountID) Amount { return m.posted[id].Sub(m.held[id]) }

// step is one op of a worker's script and what the model predicts for it.
type step struct {
	op     Op
	reject bool // the model predicts a recorded rejection
	replay bool // a repeated key: predicts a replay of an earlier outcome
	orig   int  // for replays, the index of the original step
}

// TestConcurrentOperationsMatchModel runs workers in parallel, each owning a
// few owners and issuing random transfers (some overdrawing), holds,
// captures, voids and repeated keys, in bursts so batches hold many ops.
// Each owner's ops go through one shard in order, so the model can predict
// every single outcome; the shared hot accounts see all workers at once.
func TestConcurrentOperationsMatchModel(t *testing.T) {
	// The poster's locks must make the outcome the same at either level;
	// SERIALIZABLE additionally aborts batches on PostgreSQL's predicate
	// locks, which exercises the retry path.
	for _, iso := range []pgx.TxIsoLevel{pgx.Serializable, pgx.RepeatableRead} {
		t.Run(string(iso), func(t *testing.T) { testConcurrentOperations(t, iso) })
	}
}

func testConcurrentOperations(t *testing.T, iso pgx.TxIsoLevel) {
	ctx := context.Background()
	e := newEnv(t, Options{Shards: 4, MaxBatch: 64, Tx: pg.TxOptions{IsoLevel: iso}})
	const workers, ownersPer, steps = 12, 3, 80
	type result struct {
		m        *model
		accounts []Account
		revenue  Amount // credited to revenue by this worker's captures and spends
		funded   Amount
	}
	results := make([]result, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			m := &model{posted: map[AccountID]Amount{}, held: map[AccountID]Amount{}, holds: map[HoldID][]HoldLeg{}}
			var accts []Account
			owners := map[AccountID]OwnerID{}
			for o := 0; o < ownersPer; o++ {
				owner := OwnerID(uuid.New())
				for _, code := range []string{"a", "b"} {
					a := e.openAccount(t, owner, code)
					accts = append(accts, a)
					owners[a.ID] = owner
				}
			}
			amount := func() Amount {
				// Amounts from 0.000000000001 up to 20, at every scale.
				digits := rng.IntN(13)
				v := rng.Int64N(20_000) + 1
				a, _ := NewAmount(MustAmount(fmt.Sprint(v)).Decimal().Shift(int32(-digits)))
				return a
			}
			var script []step
			var revenue, funded Amount
			next := func() step {
				acc := accts[rng.IntN(len(accts))]
				owner := owners[acc.ID]
				key := fmt.Sprintf("w%d-%d-%s", w, len(script), uuid.NewString()[:8])
				fund := func() step {
					amt := amount()
					m.posted[acc.ID] = m.posted[acc.ID].Add(amt)
					funded = funded.Add(amt)
					return step{op: &TransferOp{IdempotencyKey: key, Owner: owner, Postings: Postings(Transfer{Debit: e.funding.ID, Credit: acc.ID, Amount: amt})}}
				}
				switch k := rng.IntN(10); {
				case k < 3 || len(script) == 0:
					return fund()
				case k < 6: // spend, maybe beyond what is available
					amt := amount()
					if m.available(acc.ID).Cmp(amt) < 0 {
						return step{op: &TransferOp{IdempotencyKey: key, Owner: owner, Postings: Postings(Transfer{Debit: acc.ID, Credit: e.revenue.ID, Amount: amt})}, reject: true}
					}
					m.posted[acc.ID] = m.posted[acc.ID].Sub(amt)
					revenue = revenue.Add(amt)
					return step{op: &TransferOp{IdempotencyKey: key, Owner: owner, Postings: Postings(Transfer{Debit: acc.ID, Credit: e.revenue.ID, Amount: amt})}}
				case k < 8: // hold over both accounts of the owner
					var legs []HoldLeg
					reject := false
					for _, x := range accts {
						if owners[x.ID] != owner || rng.IntN(3) == 0 {
							continue
						}
						amt := amount()
						if m.available(x.ID).Cmp(amt) < 0 {
							reject = true
						}
						legs = append(legs, HoldLeg{Debit: x.ID, Credit: e.revenue.ID, Amount: amt})
					}
					if len(legs) == 0 {
						legs = append(legs, HoldLeg{Debit: acc.ID, Credit: e.revenue.ID, Amount: amount()})
						reject = m.available(acc.ID).Cmp(legs[0].Amount) < 0
					}
					id := NewHoldID()
					if !reject {
						m.holds[id] = legs
						for _, l := range legs {
							m.held[l.Debit] = m.held[l.Debit].Add(l.Amount)
						}
					}
					return step{op: &HoldOp{IdempotencyKey: key, ID: id, Owner: owner, Legs: legs}, reject: reject}
				case k < 9 && len(m.holds) > 0: // capture part or all, or void
					var id HoldID
					for h := range m.holds {
						id = h
						break
					}
					legs := m.holds[id]
					delete(m.holds, id)
					var total Amount
					for _, l := range legs {
						m.held[l.Debit] = m.held[l.Debit].Sub(l.Amount)
						total = total.Add(l.Amount)
					}
					owner := owners[legs[0].Debit]
					if rng.IntN(3) == 0 {
						return step{op: &VoidOp{IdempotencyKey: key, Hold: id, Owner: owner}}
					}
					want := total
					if rng.IntN(2) == 0 {
						want, _ = NewAmount(total.Decimal().Mul(MustAmount("0.5").Decimal()).Truncate(Scale))
					}
					left := want
					for _, l := range legs {
						part := l.Amount.Min(left)
						left = left.Sub(part)
						m.posted[l.Debit] = m.posted[l.Debit].Sub(part)
					}
					revenue = revenue.Add(want)
					return step{op: &CaptureOp{IdempotencyKey: key, Hold: id, Owner: owner, Amount: &want}}
				default: // repeat an earlier key with the same payload
					i := rng.IntN(len(script))
					for script[i].replay {
						i = script[i].orig
					}
					return step{op: script[i].op, replay: true, orig: i}
				}
			}
			outs := make([]Outcome, 0, steps)
			for len(script) < steps {
				// A burst of ops enqueued without waiting lands in shared batches.
				burst := 1 + rng.IntN(12)
				var pend []*Pending
				for i := 0; i < burst && len(script) < steps; i++ {
					s := next()
					script = append(script, s)
					p, err := e.l.Enqueue(ctx, s.op)
					if err != nil {
						errs <- err
						return
					}
					pend = append(pend, p)
				}
				for _, p := range pend {
					out, err := p.Wait(ctx)
					if err != nil {
						errs <- fmt.Errorf("worker %d step %d: %w", w, len(outs), err)
						return
					}
					outs = append(outs, out)
				}
			}
			for i, s := range script {
				out := outs[i]
				switch {
				case s.replay:
					orig := outs[s.orig]
					if !out.Replayed || out.EntryID != orig.EntryID || out.Status != orig.Status {
						errs <- fmt.Errorf("worker %d step %d: replay %+v of %+v", w, i, out, orig)
						return
					}
				case s.reject != (out.Status == StatusRejected):
					errs <- fmt.Errorf("worker %d step %d (%s): model predicts reject=%v, ledger says %+v", w, i, s.op.Kind(), s.reject, out)
					return
				}
			}
			// A key reused with another payload is a conflict, never applied.
			if tr, ok := script[0].op.(*TransferOp); ok {
				other := *tr
				other.Description = "changed"
				if _, err := e.l.Submit(ctx, &other); !errors.Is(err, ErrIdempotencyConflict) {
					errs <- fmt.Errorf("worker %d: conflict = %v", w, err)
					return
				}
			}
			results[w] = result{m: m, accounts: accts, revenue: revenue, funded: funded}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	var revenue, funded Amount
	for _, r := range results {
		revenue, funded = revenue.Add(r.revenue), funded.Add(r.funded)
		for _, a := range r.accounts {
			got, err := e.l.Account(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Posted(Credit).Equal(r.m.posted[a.ID]) || !got.Held(Credit).Equal(r.m.held[a.ID]) {
				t.Errorf("%s: posted %s held %s; model %s held %s", a.Code, got.Posted(Credit), got.Held(Credit), r.m.posted[a.ID], r.m.held[a.ID])
			}
		}
	}
	rev, err := e.l.Account(ctx, e.revenue.ID)
	if err != nil {
		t.Fatal(err)
	}
	fund, err := e.l.Account(ctx, e.funding.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Posted(Credit).Equal(revenue) || !fund.Posted(Debit).Equal(funded) {
		t.Errorf("revenue %s (model %s), funding %s (model %s)", rev.Posted(Credit), revenue, fund.Posted(Debit), funded)
	}
	e.observer.mu.Lock()
	t.Logf("%d batches, %d retried attempts", len(e.observer.batches), e.observer.retries)
	e.observer.mu.Unlock()
	mustVerify(t, e.db)
}
