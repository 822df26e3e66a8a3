package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
)

// The wallet module: what every wallet operation has (routing, validation,
// submission), what an op says it needs loaded, and the stage that loads it
// for a whole batch and writes back what changed. Each concern keeps its
// own book: grants and burn-down (credits.go), reactions and top-ups
// (reactions.go), what wallets owe until an invoice settles it (settle.go).

// Journal entry kinds of wallet operations. Point-in-time balances classify
// postings by them.
const (
	KindGrant       = "grant"
	KindDebit       = "debit"
	KindHold        = "hold"
	KindGrantVoid   = "grant_void"
	KindGrantExpiry = "grant_expiry"
)

// Rejection codes of wallet operations, as recorded in the journal. The API
// maps them to HTTP statuses.
const (
	// CodeInsufficientCredits: the wallet's credits (and overage allowance)
	// cannot cover a debit or hold; nothing was posted. The ledger core's
	// word for it is overdraft; a wallet speaks of credits.
	CodeInsufficientCredits = "insufficient_credits"
	CodeHoldClosed          = ledger.CodeHoldClosed
	CodeHoldNotFound        = ledger.CodeHoldNotFound
	CodeCaptureExceedsHold  = ledger.CodeHoldExceeded
	CodeGrantClosed         = "grant_closed"
)

// RejectionCodes lists the codes wallet operations record besides the
// ledger's own, for tables that must map each.
func RejectionCodes() []string {
	return []string{CodeInsufficientCredits, CodeGrantClosed, CodeTopupClosed}
}

// Route is the one routing function of wallet operations: every operation
// of a customer — grants, debits, holds with their captures, voids and
// expiries, top-ups, closes, and the customer's usage events — goes to one
// poster shard, so they apply in order and never contend across shards.
func Route(customer string) uint64 { return ledger.ShardOf(customer) }

// op is implemented by every wallet operation: it says what the wallet stage
// must load for it (needs), rather than the stage guessing from its type.
type op interface {
	ledger.ModuleOp // the poster runs the wallet stage for it
	needs(n *need)
}

// Every wallet operation is an op.
var (
	_ op = (*debitOp)(nil)
	_ op = (*holdOp)(nil)
	_ op = (*captureOp)(nil)
	_ op = (*voidHoldOp)(nil)
	_ op = (*addGrantOp)(nil)
	_ op = (*closeGrantOp)(nil)
	_ op = (*settleTopupOp)(nil)
	_ op = (*updateWalletOp)(nil)
)

// base carries what every wallet op has. Fingerprints cover the request,
// never ids the service generated for it, so a retried request matches.
type base struct {
	key      string
	walletID WalletID
	customer string // routes the op (Route)
	sys      systemAccounts
}

func (o *base) Key() string { return o.key }

func (o *base) ShardKey() uint64 { return Route(o.customer) }

func (o *base) Module() string { return moduleName }

func (o *base) needs(n *need) { n.wallet(o.walletID) }

// need is what a batch's wallet ops need loaded.
type need struct {
	wallets []uuid.UUID
	grants  []uuid.UUID // grants an op names: loaded even when closed
	topups  []uuid.UUID // top-ups an op settles
	closing []uuid.UUID // wallets that settle: their open lines and billable top-ups
	sums    bool        // the wallets' grant sums, for the balance a debit answers with
}

func (n *need) wallet(id WalletID) { n.wallets = append(n.wallets, uuid.UUID(id)) }

// walletFor returns the op's wallet from the stage. The service checked it
// exists before submitting; a wallet missing here was never there.
func walletFor(b ledger.Batch, id WalletID) (*stage, *walletState, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, nil, err
	}
	w := s.wallets[id]
	if w == nil {
		return nil, nil, fault.NotFoundf("no wallet %s", id)
	}
	if s.cache != nil {
		s.touch(b, w) // the balance cache (balancestage.go)
	}
	return s, w, nil
}

// submit runs op through the poster and answers with its stored result.
func submit[T any](ctx context.Context, s *Service, o ledger.Op) (ledger.Result[T], error) {
	return ledger.Answer[T](s.l.Submit(ctx, o))
}

func newKey(key string) string {
	if key == "" {
		return "auto:" + uuid.NewString()
	}
	return key
}

// opAmount checks an amount a request asks to move: above zero and within
// the ledger's limit per operation, so a request is refused with a 422
// naming the field long before any counter could come near its limit.
func opAmount(field string, a ledger.Amount) error {
	if !a.IsPositive() {
		return fault.Invalidf(field, "must be greater than zero")
	}
	if ledger.CheckOpAmount(a) != nil {
		return fault.Invalidf(field, "at most %s per operation", ledger.MaxOpAmount)
	}
	return nil
}

// maxMetadata bounds a metadata object, in bytes.
const maxMetadata = 16 << 10

func validMetadata(field string, m json.RawMessage) error {
	if len(m) == 0 {
		return nil
	}
	if len(m) > maxMetadata {
		return fault.Invalidf(field, "at most 16 KiB")
	}
	var obj map[string]any
	if err := json.Unmarshal(m, &obj); err != nil {
		return fault.Invalidf(field, "must be a JSON object")
	}
	return textError(text.CheckJSON(field, m, maxMetadata))
}

// checkText refuses text PostgreSQL would not store, or that is too long,
// before it reaches a batch, where it would fail every operation with it.
func checkText(field, s string, maxBytes int) error {
	return textError(text.Check(field, s, maxBytes))
}

// textError is a text.Error as an invalid field.
func textError(err error) error {
	var te *text.Error
	if errors.As(err, &te) {
		return fault.Invalidf(te.Field, "%s", te.Detail)
	}
	return err
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const moduleName = "wallet"

type module struct {
	cache *BalanceCache // nil: no balance cache (balancecache.go)
}

func (module) Name() string { return moduleName }

func (module) Feeds() []string { return nil }

func (m module) NewStage() ledger.Stage {
	if m.cache == nil {
		return &stage{}
	}
	return &stage{cache: m.cache, since: m.cache.batchToken()}
}

// stage is the wallet module's part of one batch attempt: the wallets its
// ops need, and one book per concern — grants and burn-down (credits.go),
// reactions and top-ups (reactions.go), what wallets owe (settle.go).
type stage struct {
	wanted   []WalletID // wallets other modules need loaded (Want)
	settling []WalletID // of those, the ones an op settles (WantSettle)
	wallets  map[WalletID]*walletState
	grants   grantBook
	topups   topupBook
	owed     owedBook
	settings map[*walletState]struct{} // wallets whose settings an op changed (patch.go)
	// The balance cache (balancestage.go): the wallets ops reached, as
	// they were before; the wallets ops named; the balances and forgotten
	// wallets Committed hands over.
	cache   *BalanceCache
	since   uint64 // the cache's token when the attempt began
	touched map[*walletState]walletSnap
	named   []WalletID
	keep    []cachedBalance
	drop    []WalletID
}

type walletState struct {
	Wallet
	overage      ledger.AccountID
	grants       []*grantState // loaded grants: active, or holding a balance, or named by an op
	react        reactions
	rule         *AutoTopup
	nextCycleEnd *time.Time
	price        *creditPrice // priced credits: what one is worth now (asset_price.go)
}

// stageOf is the wallet stage of b. Every wallet op is a ledger.ModuleOp,
// so the poster never applies one in a batch without it; metering, which
// charges wallets, declares that it feeds this module.
func stageOf(b ledger.Batch) (*stage, error) {
	s, ok := b.Stage(module{}).(*stage)
	if !ok {
		return nil, fmt.Errorf("wallet: the batch has no wallet stage; build the ledger with wallet.Module()")
	}
	return s, nil
}

// Want asks the wallet stage of batch b to load wallet id, for the stage of
// a module that feeds this one (metering learns which wallets its events
// charge while it loads, before the wallet stage loads).
func Want(b ledger.StageBatch, id WalletID) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.wanted = append(s.wanted, id)
	return nil
}

// Load reads, for the whole batch, the wallets its ops need (with their
// reactions and auto top-up rules), their live grants, the top-ups ops
// settle, and what the wallets that settle owe, and declares the accounts
// to lock.
func (s *stage) Load(ctx context.Context, b ledger.StageBatch, ops []ledger.Op) error {
	var n need
	for _, id := range s.wanted {
		n.wallet(id)
	}
	for _, id := range s.settling {
		n.closing = append(n.closing, uuid.UUID(id))
		b.DeclareAccount(billableAccount(id))
	}
	for _, o := range ops {
		if w, ok := o.(op); ok {
			w.needs(&n)
		}
	}
	if s.cache != nil {
		// Every balance the batch changes goes into the cache, and a
		// balance needs the grant sums: loaded with the wallets, one
		// LATERAL sum per wallet in the same statement. (Taking them from
		// the cached entry instead made the cache livelock under ingest:
		// a wallet committed during each database read of it never got an
		// entry for its commits to update.)
		n.sums = true
		s.touched, s.named = nil, make([]WalletID, 0, len(n.wallets)-len(s.wanted))
		for _, id := range n.wallets[len(s.wanted):] { // named by this module's ops
			s.named = append(s.named, WalletID(id))
		}
	}
	s.wallets = map[WalletID]*walletState{}
	s.grants.reset()
	s.topups.reset()
	s.owed = owedBook{} // opened by the ops that bill usage beyond the credits or settle
	s.settings = nil
	if len(n.wallets) == 0 {
		return nil
	}
	if err := s.loadWallets(ctx, b, n.wallets, n.sums); err != nil {
		return err
	}
	if err := s.loadGrants(ctx, b, n.wallets, n.grants); err != nil {
		return err
	}
	if err := s.loadTopups(ctx, b.Tx(), n.topups, n.closing); err != nil {
		return err
	}
	if len(n.closing) == 0 {
		return nil
	}
	return s.loadLines(ctx, b.Tx(), n.closing)
}

// Flush writes, one statement per table, what the batch changed: grants,
// wallets' reactions and cycle ends, top-ups, and — when an op opened the
// owed book — the open lines.
func (s *stage) Flush(ctx context.Context, b ledger.StageBatch) error {
	flush := []func(context.Context, ledger.StageBatch) error{s.flushGrants, s.flushWallets, s.flushTopups}
	if len(s.settings) > 0 { // a PATCH changed some (patch.go)
		flush = append(flush, s.flushSettings)
	}
	if s.owed.deltas != nil { // opened (owedBook.open)
		flush = append(flush, s.flushLines)
	}
	for _, f := range flush {
		if err := f(ctx, b); err != nil {
			return err
		}
	}
	if s.cache != nil {
		s.keepBalances(b) // last: after the grants are written
	}
	return nil
}

// Committed hands the batch's balances to the cache (ledger.Committer):
// after COMMIT, before any caller of the batch is answered.
func (s *stage) Committed() {
	if s.cache != nil {
		s.cache.committed(s.since, s.keep, s.drop)
	}
}

// loadWallets reads the batch's wallets with their reactions and auto
// top-up rules, and declares their overage accounts. With sums, each
// wallet's grant sums over all its grants come in the same statement.
func (s *stage) loadWallets(ctx context.Context, b ledger.StageBatch, ids []uuid.UUID, sums bool) error {
	rows, err := b.Tx().Query(ctx, loadWalletsSQL(sums), ids)
	if err != nil {
		return fmt.Errorf("load wallets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			react []byte
			next  *time.Time
			rule  ruleScan
			price priceScan
			t     totals
		)
		dst := append(append([]any{&react, &next}, rule.dest()...), price.dest()...)
		if sums {
			dst = append(dst, &t.granted, &t.expired, &t.voided)
		}
		w, overage, err := scanWallet(rows, dst...)
		if err != nil {
			return err
		}
		st := &walletState{Wallet: w, overage: overage, rule: rule.rule(w.ID), nextCycleEnd: next, price: price.price()}
		if st.react, err = decodeReactions(react); err != nil {
			return err
		}
		s.wallets[w.ID] = st
		s.grants.totals[w.ID] = &t
		b.DeclareAccount(overage)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load wallets: %w", err)
	}
	return nil
}

// flushWallets writes the wallets' reactions and next cycle ends, which the
// reactions and the scheduled closes change.
func (s *stage) flushWallets(ctx context.Context, b ledger.StageBatch) error {
	dirty := map[*walletState]struct{}{}
	for w := range s.topups.reacted {
		dirty[w] = struct{}{}
	}
	for w := range s.owed.moved {
		dirty[w] = struct{}{}
	}
	if len(dirty) == 0 {
		return nil
	}
	var (
		ids    []uuid.UUID
		reacts []*string
		ends   []*time.Time
	)
	for w := range dirty {
		ids = append(ids, uuid.UUID(w.ID))
		var r *string
		if _, ok := s.topups.reacted[w]; ok {
			raw, err := json.Marshal(w.react)
			if err != nil {
				return fmt.Errorf("wallet %s reactions: %w", w.ID, err)
			}
			str := string(raw)
			r = &str
		}
		reacts = append(reacts, r)
		ends = append(ends, w.nextCycleEnd)
	}
	if _, err := b.Tx().Exec(ctx, updateReactionsSQL, ids, reacts, ends); err != nil {
		return fmt.Errorf("update wallet reactions: %w", err)
	}
	return nil
}

// loadWalletsSQL reads wallets by id (see loadWallets). Each table is
// reached from the ids through a LATERAL subquery on its key (OFFSET 0
// keeps the planner from flattening it into a join it could hash), so the
// only plan is an index probe per wallet, with or without statistics (see
// "Plans that never go stale" in ARCHITECTURE.md).
func loadWalletsSQL(sums bool) string {
	from := `FROM (SELECT DISTINCT id FROM unnest($1::UUID[]) AS u(id)) AS k
		CROSS JOIN LATERAL (SELECT * FROM wallets WHERE id = k.id OFFSET 0) AS w
		LEFT JOIN LATERAL (SELECT * FROM auto_topup_rules WHERE wallet_id = w.id OFFSET 0) AS r ON true ` + priceJoin
	if !sums {
		return `SELECT ` + walletColumns + `, w.reactions, w.next_cycle_end, ` + ruleColumns + `, ` + priceColumns + `
		` + from
	}
	return `SELECT ` + walletColumns + `, w.reactions, w.next_cycle_end, ` + ruleColumns + `, ` + priceColumns + `, gs.granted, gs.expired, gs.voided
		` + from + `
		CROSS JOIN LATERAL (SELECT COALESCE(SUM(g.amount), 0) AS granted, COALESCE(SUM(g.expired_amount), 0) AS expired,
			COALESCE(SUM(g.voided_amount), 0) AS voided FROM grants g WHERE g.wallet_id = w.id) gs`
}

// updateReactionsSQL writes the wallets' reaction state.
const updateReactionsSQL = `UPDATE wallets AS w SET reactions = COALESCE(u.r::JSONB, w.reactions),
			next_cycle_end = COALESCE(u.n, w.next_cycle_end)
		FROM unnest($1::UUID[], $2::TEXT[], $3::TIMESTAMPTZ[]) AS u(id, r, n)
		WHERE w.id = u.id`
