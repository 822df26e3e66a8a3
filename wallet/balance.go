package wallet

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// balanceAt replays the journal up to t: every posting on the wallet's
// accounts created at or before t, classified by the kind of its entry.
func (s *Service) balanceAt(ctx context.Context, w Wallet, overage ledger.AccountID, t time.Time) (Balance, error) {
	b := Balance{WalletID: w.ID, Asset: w.Asset, AsOf: t, Grants: []GrantBalance{}}
	if t.Before(w.CreatedAt) {
		return b, nil // nothing burnt before the wallet was
	}
	rows, err := s.db.Pool.Query(ctx, grantSelect+` FROM grants g WHERE g.wallet_id = $1 AND g.created_at <= $2`, w.ID, t)
	if err != nil {
		return Balance{}, fmt.Errorf("read grants: %w", err)
	}
	grants := map[ledger.AccountID]*grantState{}
	accounts := []uuid.UUID{uuid.UUID(overage)}
	for rows.Next() {
		g, account, err := scanGrant(rows)
		if err != nil {
			rows.Close()
			return Balance{}, err
		}
		grants[account] = &grantState{Grant: g, account: account}
		accounts = append(accounts, uuid.UUID(account))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Balance{}, err
	}
	rows, err = s.db.Pool.Query(ctx, `SELECT p.account_id, e.kind, p.direction, p.pending, SUM(p.amount)
		FROM ledger_postings p JOIN ledger_entries e ON e.id = p.entry_id
		WHERE p.account_id = ANY($1) AND p.created_at <= $2
		GROUP BY p.account_id, e.kind, p.direction, p.pending`, accounts, t)
	if err != nil {
		return Balance{}, fmt.Errorf("replay postings: %w", err)
	}
	defer rows.Close()
	posted := map[ledger.AccountID]ledger.Amount{} // credit-normal for grants, debit-normal for overage
	held := map[ledger.AccountID]ledger.Amount{}
	for rows.Next() {
		var (
			acct      ledger.AccountID
			kind, dir string
			pending   bool
			sum       ledger.Amount
		)
		if err := rows.Scan(&acct, &kind, &dir, &pending, &sum); err != nil {
			return Balance{}, err
		}
		if acct == overage {
			switch {
			case pending && dir == "debit":
				b.Held = b.Held.Add(sum)
			case !pending && dir == "debit":
				b.Overage = b.Overage.Add(sum)
			case !pending:
				b.Overage = b.Overage.Sub(sum)
			}
			continue
		}
		switch {
		case pending && dir == "debit":
			held[acct] = held[acct].Add(sum)
		case pending:
		case dir == "credit":
			posted[acct] = posted[acct].Add(sum)
			b.Granted = b.Granted.Add(sum)
		default:
			posted[acct] = posted[acct].Sub(sum)
			switch kind {
			case KindGrantExpiry:
				b.Expired = b.Expired.Add(sum)
			case KindGrantVoid:
				b.Voided = b.Voided.Add(sum)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return Balance{}, err
	}
	var remaining ledger.Amount
	var live []*grantState
	for acct, g := range grants {
		p, h := posted[acct], held[acct]
		remaining = remaining.Add(p)
		b.Held = b.Held.Add(h)
		// The grant's state at t, from its timestamps.
		active := g.Status == GrantActive ||
			(g.VoidedAt != nil && g.VoidedAt.After(t)) || (g.ExpiredAt != nil && g.ExpiredAt.After(t))
		usable := active && !g.EffectiveAt.After(t) && (g.ExpiresAt == nil || g.ExpiresAt.After(t))
		if usable {
			b.Available = b.Available.Add(p.Sub(h))
		}
		if active && p.IsPositive() {
			g.Remaining = p
			live = append(live, g)
		}
	}
	b.Consumed = b.Granted.Sub(b.Expired).Sub(b.Voided).Sub(remaining)
	burnOrder(live)
	for _, g := range live {
		b.Grants = append(b.Grants, GrantBalance{ID: g.ID, Remaining: g.Remaining, Priority: g.Priority, ExpiresAt: g.ExpiresAt})
	}
	return s.withRunway(ctx, b)
}

// Balance is the wallet's balance now, or as it was at *at. With a
// balance cache (UseBalanceCache), now is answered from memory when it can
// be (balancecache.go).
func (s *Service) Balance(ctx context.Context, id WalletID, at *time.Time) (Balance, error) {
	now := s.now()
	if at != nil && at.Before(now) {
		w, overage, err := s.walletRow(ctx, id)
		if err != nil {
			return Balance{}, err
		}
		return s.balanceAt(ctx, w, overage, at.UTC())
	}
	if s.cache != nil {
		return s.cachedBalance(ctx, id, now)
	}
	b, _, err := s.balanceNow(ctx, id, now)
	if err != nil {
		return Balance{}, err
	}
	return s.withRunway(ctx, b)
}

// balanceNow reads the wallet's balance at now from the database, without
// the runway, and the instant until which its Available holds (the
// earliest grant boundary after now; nil: none).
func (s *Service) balanceNow(ctx context.Context, id WalletID, now time.Time) (Balance, *time.Time, error) {
	w, overage, err := s.walletRow(ctx, id)
	if err != nil {
		return Balance{}, nil, err
	}
	// One statement, so the grants and the overage receivable are read from
	// one snapshot: a debit moving from the last grant into overage cannot
	// be seen half-done. The receivable's counters ride on every grant row.
	rows, err := s.db.Pool.Query(ctx, grantSelect+`, bal.debits_posted, bal.credits_posted, bal.debits_pending,
			o.debits_posted, o.credits_posted, o.debits_pending
		FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		CROSS JOIN (SELECT COALESCE(SUM(debits_posted), 0) AS debits_posted, COALESCE(SUM(credits_posted), 0) AS credits_posted,
			COALESCE(SUM(debits_pending), 0) AS debits_pending FROM ledger_balances WHERE account_id = $2) o
		WHERE g.wallet_id = $1`, id, overage)
	if err != nil {
		return Balance{}, nil, fmt.Errorf("read grants: %w", err)
	}
	defer rows.Close()
	b := Balance{WalletID: w.ID, Asset: w.Asset, AsOf: now, Grants: []GrantBalance{}}
	var (
		live      []*grantState
		all       []*grantState
		remaining ledger.Amount
		receiv    ledger.Balance
		anyGrant  bool
	)
	for rows.Next() {
		var bal ledger.Balance
		g, _, err := scanGrant(rows, &bal.DebitsPosted, &bal.CreditsPosted, &bal.DebitsPending,
			&receiv.DebitsPosted, &receiv.CreditsPosted, &receiv.DebitsPending)
		if err != nil {
			return Balance{}, nil, err
		}
		anyGrant = true
		posted := bal.Posted(ledger.Credit)
		g.Remaining = posted
		remaining = remaining.Add(posted)
		b.Held = b.Held.Add(bal.DebitsPending)
		b.Granted, b.Expired, b.Voided = b.Granted.Add(g.Amount), b.Expired.Add(g.Expired), b.Voided.Add(g.Voided)
		gs := &grantState{Grant: g}
		all = append(all, gs)
		if gs.usable(now) {
			b.Available = b.Available.Add(bal.Available(ledger.Credit))
		}
		if g.Status == GrantActive && posted.IsPositive() {
			live = append(live, gs)
		}
	}
	if err := rows.Err(); err != nil {
		return Balance{}, nil, err
	}
	if !anyGrant {
		// No grant row carried the receivable: read it alone.
		acc, err := s.l.Account(ctx, overage)
		if err != nil {
			return Balance{}, nil, err
		}
		receiv = acc.Balance
	}
	b.Overage = receiv.Posted(ledger.Debit)
	b.Held = b.Held.Add(receiv.DebitsPending)
	b.Consumed = b.Granted.Sub(b.Expired).Sub(b.Voided).Sub(remaining)
	burnOrder(live)
	for _, g := range live {
		b.Grants = append(b.Grants, GrantBalance{ID: g.ID, Remaining: g.Remaining, Priority: g.Priority, ExpiresAt: g.ExpiresAt})
	}
	return b, grantBoundary(now, all), nil
}

// GrantBalance is one active grant in a balance.
type GrantBalance struct {
	ID        GrantID       `json:"id"`
	Remaining ledger.Amount `json:"remaining"`
	Priority  int           `json:"priority"`
	ExpiresAt *time.Time    `json:"expires_at"`
}

// Balance is a wallet's balance. Available is what debits may still use:
// the active grants' balance minus what holds reserve. Overage is the
// receivable for usage the credits did not cover.
type Balance struct {
	WalletID  WalletID       `json:"wallet_id"`
	Asset     string         `json:"asset"`
	Available ledger.Amount  `json:"available"`
	Held      ledger.Amount  `json:"held"`
	Overage   ledger.Amount  `json:"overage"`
	Granted   ledger.Amount  `json:"granted"`
	Consumed  ledger.Amount  `json:"consumed"`
	Expired   ledger.Amount  `json:"expired"`
	Voided    ledger.Amount  `json:"voided"`
	Grants    []GrantBalance `json:"grants"`
	AsOf      time.Time      `json:"as_of"`
	// The runway (runway.go): the burn over the 7 days before AsOf, per
	// day, and when available runs out at that pace; null without burn.
	BurnRatePerDay *ledger.Amount `json:"burn_rate_per_day"`
	DepletesAt     *time.Time     `json:"depletes_at"`
}

// withRunway adds the runway as of the balance's instant.
func (s *Service) withRunway(ctx context.Context, b Balance) (Balance, error) {
	rw, err := s.runwayAt(ctx, b.WalletID, b.Available, b.AsOf)
	if err != nil {
		return Balance{}, err
	}
	b.BurnRatePerDay, b.DepletesAt = rw.BurnRatePerDay, rw.DepletesAt
	return b, nil
}
