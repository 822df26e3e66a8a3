package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// CreatePlan makes a plan and its version 1, in force from now, with its
// prices, in one transaction. key is the client's Idempotency-Key ("" for
// none): a retry with it answers the plan the first request made
// (replayed), the same key with another request is fault.Idempotency.
func (s *Service) CreatePlan(ctx context.Context, key string, np NewPlan) (Plan, bool, error) {
	hash := ledger.Fingerprint("plan", np)
	if key != "" {
		if p, ok, err := s.planByKey(ctx, `SELECT code, 1, request_hash FROM plans WHERE idempotency_key = $1`, hash, key); ok || err != nil {
			return p, ok, err
		}
	}
	p, err := s.createPlan(ctx, key, hash, np)
	if errors.Is(err, errKeyTaken) {
		p, _, err := s.planByKey(ctx, `SELECT code, 1, request_hash FROM plans WHERE idempotency_key = $1`, hash, key)
		return p, true, err
	}
	return p, false, err
}

// errKeyTaken is an insert that met its idempotency key already taken: the
// same key raced the request and won.
var errKeyTaken = errors.New("idempotency key taken")

// planByKey is the plan version made with key (query answers its code,
// version and request hash), if any.
func (s *Service) planByKey(ctx context.Context, query string, hash []byte, args ...any) (Plan, bool, error) {
	var (
		code string
		n    int
		made []byte
	)
	err := s.db.Pool.QueryRow(ctx, query, args...).Scan(&code, &n, &made)
	if errors.Is(err, pgx.ErrNoRows) {
		return Plan{}, false, nil
	}
	if err != nil {
		return Plan{}, false, fmt.Errorf("find by idempotency key: %w", err)
	}
	if !bytes.Equal(made, hash) {
		return Plan{}, false, fault.New(fault.Idempotency, "this Idempotency-Key was used with another request; send a new key for a new request")
	}
	p, err := s.Plan(ctx, code, n)
	return p, err == nil, err
}

func (s *Service) createPlan(ctx context.Context, key string, hash []byte, np NewPlan) (Plan, error) {
	if np.EffectiveAt != nil {
		return Plan{}, fault.Invalidf("effective_at", "a new plan is in force from now; later changes are new versions")
	}
	v, err := s.prepareVersion(ctx, &np, false, np.Currency)
	if err != nil {
		return Plan{}, err
	}
	now := s.l.Now()
	v.Code, v.Name, v.Currency, v.Interval, v.Version, v.EffectiveAt, v.CreatedAt = np.Code, np.Name, np.Currency, np.Interval, 1, now, now
	err = s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO plans (code, name, currency, billing_interval, created_at, idempotency_key, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			v.Code, nullString(v.Name), v.Currency, string(v.Interval), now, nullString(key), hash)
		if pg.IsUnique(err, "plans_idempotency_key") {
			return errKeyTaken
		}
		if pg.IsUnique(err, "") {
			return fault.Existsf("plan %q exists; a change is a new version (POST /plans/%s/versions)", v.Code, v.Code)
		}
		if err != nil {
			return fmt.Errorf("create plan: %w", err)
		}
		return insertVersion(ctx, tx, &v)
	})
	if err != nil {
		return Plan{}, err
	}
	return s.Plan(ctx, v.Code, v.Version)
}

// AddVersion appends a version to a plan, in force from np.EffectiveAt
// (default now), which must be neither in the past nor before the latest
// version's. What np leaves out is the latest version's. Events, fees and
// grants before it keep the version they had.
func (s *Service) AddVersion(ctx context.Context, code, key string, np NewPlan) (Plan, bool, error) {
	hash := ledger.Fingerprint("plan-version", np)
	const byKey = `SELECT plan_code, version, request_hash FROM plan_versions WHERE plan_code = $1 AND idempotency_key = $2`
	if key != "" {
		if p, ok, err := s.planByKey(ctx, byKey, hash, code, key); ok || err != nil {
			return p, ok, err
		}
	}
	p, err := s.addVersion(ctx, code, key, hash, np)
	if errors.Is(err, errKeyTaken) {
		p, _, err := s.planByKey(ctx, byKey, hash, code, key)
		return p, true, err
	}
	return p, false, err
}

func (s *Service) addVersion(ctx context.Context, code, key string, hash []byte, np NewPlan) (Plan, error) {
	cur, err := s.Plan(ctx, code, 0)
	if err != nil {
		return Plan{}, err
	}
	if cur.ArchivedAt != nil {
		return Plan{}, fault.Conflictf("", "plan %q is archived", code)
	}
	if np.Currency != "" && np.Currency != cur.Currency {
		return Plan{}, fault.Invalidf("currency", "a plan's currency is %s for all its versions; make another plan", cur.Currency)
	}
	if np.Interval != "" && np.Interval != cur.Interval {
		return Plan{}, fault.Invalidf("interval", "a plan's interval is %s for all its versions; make another plan", cur.Interval)
	}
	latest, err := s.Plan(ctx, code, cur.Versions[len(cur.Versions)-1].Version)
	if err != nil {
		return Plan{}, err
	}
	inherit(&np, latest)
	v, err := s.prepareVersion(ctx, &np, true, cur.Currency)
	if err != nil {
		return Plan{}, err
	}
	now := s.l.Now()
	v.EffectiveAt = now
	if np.EffectiveAt != nil {
		v.EffectiveAt = np.EffectiveAt.UTC()
	}
	last := cur.Versions[len(cur.Versions)-1]
	switch {
	case v.EffectiveAt.Before(now):
		return Plan{}, fault.Invalidf("effective_at", "must not be in the past (now is %s): what was charged is never re-rated",
			now.Format(time.RFC3339))
	case !v.EffectiveAt.After(last.EffectiveAt):
		return Plan{}, fault.Invalidf("effective_at", "must be after version %d's (%s)", last.Version,
			last.EffectiveAt.Format(time.RFC3339))
	}
	v.Code, v.Name, v.Currency, v.Interval, v.CreatedAt = code, cur.Name, cur.Currency, cur.Interval, now
	if np.Name != "" {
		v.Name = np.Name
	}
	err = s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM plan_versions WHERE plan_code = $1`, code).Scan(&v.Version); err != nil {
			return fmt.Errorf("number the version: %w", err)
		}
		if np.Name != "" {
			if _, err := tx.Exec(ctx, `UPDATE plans SET name = $2 WHERE code = $1`, code, np.Name); err != nil {
				return fmt.Errorf("rename plan: %w", err)
			}
		}
		v.idempotencyKey, v.requestHash = nullString(key), hash
		return insertVersion(ctx, tx, &v)
	})
	if errors.Is(err, errKeyTaken) {
		return Plan{}, err
	}
	if pg.IsUnique(err, "") || errors.Is(err, fault.Exists) {
		return Plan{}, fault.Existsf("plan %q got another version at the same time; read it and try again", code)
	}
	if err != nil {
		return Plan{}, err
	}
	return s.Plan(ctx, code, v.Version)
}

// inherit fills what a new version does not say from the latest version,
// so a version that only raises the base fee keeps the prices and the
// included credits. An empty list says "none".
func inherit(np *NewPlan, cur Plan) {
	if np.BaseFee == nil {
		fee := cur.BaseFee
		np.BaseFee = &fee
	}
	if np.MinimumCommitment == nil {
		c := cur.MinimumCommitment
		np.MinimumCommitment = &c
	}
	if np.OveragePolicy == "" {
		np.OveragePolicy = cur.OveragePolicy
	}
	if np.IncludedCredits == nil {
		np.IncludedCredits = []NewIncludedCredit{}
		for _, ic := range cur.IncludedCredits {
			amount, prio := ic.Amount, ic.Priority
			np.IncludedCredits = append(np.IncludedCredits, NewIncludedCredit{Asset: ic.Asset, Amount: &amount, Rollover: ic.Rollover, Priority: &prio})
		}
	}
	if np.Prices == nil {
		np.Prices = []metering.NewPrice{}
		for _, p := range cur.Prices {
			np.Prices = append(np.Prices, metering.NewPrice{MeterCode: p.MeterCode, Asset: p.Asset, Price: p.Price})
		}
	}
}

// prepareVersion validates a version's definition and its prices, whose
// assets must be the plan's currency or credits sold in it.
func (s *Service) prepareVersion(ctx context.Context, np *NewPlan, isVersion bool, currency string) (Plan, error) {
	included, err := np.validate(isVersion)
	if err != nil {
		return Plan{}, err
	}
	v := Plan{VersionID: uuid.New(), BaseFee: *np.BaseFee, MinimumCommitment: *np.MinimumCommitment,
		IncludedCredits: included, OveragePolicy: np.OveragePolicy, Prices: []metering.Price{}}
	for i, ic := range included {
		if err := s.checkAsset(ctx, fmt.Sprintf("included_credits[%d].asset", i), ic.Asset, currency); err != nil {
			return Plan{}, err
		}
	}
	series := map[string]bool{}
	for i, npr := range np.Prices {
		field := fmt.Sprintf("prices[%d]", i)
		if npr.EffectiveAt != nil {
			return Plan{}, fault.Invalidf(field+".effective_at", "a plan's prices take effect with its version")
		}
		p, err := s.meters.PreparePrice(ctx, npr)
		if err != nil {
			return Plan{}, prefixField(field, err)
		}
		if err := s.checkAsset(ctx, field+".asset", p.Asset, currency); err != nil {
			return Plan{}, err
		}
		k := p.MeterCode + "|" + p.Asset + "|" + p.Price.DimensionKey()
		if series[k] {
			return Plan{}, fault.Invalidf(field, "a second %s price of meter %q for the same dimensions", p.Asset, p.MeterCode)
		}
		series[k] = true
		p.Scope, p.EffectiveAt = metering.PlanScope(v.VersionID), metering.Beginning
		v.Prices = append(v.Prices, p)
	}
	return v, nil
}

// checkAsset refuses an asset a plan in currency cannot bill: the currency
// itself, or credits the asset registry says are sold in it.
func (s *Service) checkAsset(ctx context.Context, field, asset, currency string) error {
	if asset == currency {
		return nil
	}
	a, err := s.wallets.Asset(ctx, asset)
	if errors.Is(err, fault.NotFound) {
		return fault.Invalidf(field, "%s is not the plan's currency %s, nor credits sold in it: describe it first (PUT /v1/assets/%s)",
			asset, currency, asset)
	}
	if err != nil {
		return err
	}
	if a.Kind != wallet.AssetCredits || a.Currency == nil || *a.Currency != currency || a.UnitPrice == nil {
		return fault.Invalidf(field, "%s is not credits priced in the plan's currency %s", asset, currency)
	}
	return nil
}

// prefixField puts a list element's path before the field an invalid
// error names: "unit_price" → "prices[2].unit_price".
func prefixField(prefix string, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind == fault.Invalid {
		f := prefix
		if fe.Field != "" {
			f += "." + fe.Field
		}
		return fault.Invalidf(f, "%s", fe.Detail)
	}
	return err
}

func insertVersion(ctx context.Context, tx pgx.Tx, v *Plan) error {
	included, err := json.Marshal(v.IncludedCredits)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO plan_versions (id, plan_code, version, effective_at, base_fee, minimum_commitment,
			included_credits, overage_policy, created_at, idempotency_key, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		v.VersionID, v.Code, v.Version, v.EffectiveAt, v.BaseFee, v.MinimumCommitment, string(included), v.OveragePolicy, v.CreatedAt,
		v.idempotencyKey, v.requestHash); err != nil {
		if pg.IsUnique(err, "plan_versions_idempotency_key") {
			return errKeyTaken
		}
		if pg.IsUnique(err, "") {
			return fault.Existsf("plan %q has a version from %s", v.Code, v.EffectiveAt.Format(time.RFC3339))
		}
		return fmt.Errorf("create plan version: %w", err)
	}
	return metering.WritePrices(ctx, tx, v.Prices)
}

// ArchivePlan stops new subscriptions to a plan; existing ones go on.
// Archiving again answers the same plan.
func (s *Service) ArchivePlan(ctx context.Context, code string) (Plan, error) {
	if _, err := s.Plan(ctx, code, 0); err != nil {
		return Plan{}, err
	}
	if _, err := s.db.Pool.Exec(ctx, `UPDATE plans SET archived_at = $2 WHERE code = $1 AND archived_at IS NULL`, code, s.l.Now()); err != nil {
		return Plan{}, fmt.Errorf("archive plan: %w", err)
	}
	return s.Plan(ctx, code, 0)
}

// Plan reads a plan at version n, or at the version in force now if n is 0.
func (s *Service) Plan(ctx context.Context, code string, n int) (Plan, error) {
	ps, err := s.plans(ctx, []string{code})
	if err != nil {
		return Plan{}, err
	}
	if len(ps) == 0 {
		return Plan{}, fault.NotFoundf("no plan %q", code)
	}
	return s.planVersion(ctx, ps[0], n)
}

// Plans lists every plan at its version in force now, by code.
func (s *Service) Plans(ctx context.Context) ([]Plan, error) {
	ps, err := s.plans(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Plan, 0, len(ps))
	for _, p := range ps {
		v, err := s.planVersion(ctx, p, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Service) planVersion(ctx context.Context, p planRecord, n int) (Plan, error) {
	var v *Plan
	if n == 0 {
		v = p.at(s.l.Now())
	} else if n <= len(p.versions) {
		v = &p.versions[n-1]
	}
	if v == nil {
		return Plan{}, fault.NotFoundf("plan %q has no version %d", p.code, n)
	}
	prices, err := s.meters.ScopePrices(ctx, []string{metering.PlanScope(v.VersionID)})
	if err != nil {
		return Plan{}, err
	}
	out := *v
	out.Prices = prices
	if out.Prices == nil {
		out.Prices = []metering.Price{}
	}
	return out, nil
}

// planRecord is a plan with all its versions, oldest first.
type planRecord struct {
	code     string
	versions []Plan
}

// at is the version in force at t: the latest whose effective time is not
// after t, or the first if t is before them all.
func (p planRecord) at(t time.Time) *Plan {
	if len(p.versions) == 0 {
		return nil
	}
	v := &p.versions[0]
	for i := range p.versions {
		if !p.versions[i].EffectiveAt.After(t) {
			v = &p.versions[i]
		}
	}
	return v
}

// plans reads plans (all of them if codes is nil) with their versions.
func (s *Service) plans(ctx context.Context, codes []string) ([]planRecord, error) {
	return readPlans(ctx, s.db.Pool, codes)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readPlans(ctx context.Context, q querier, codes []string) ([]planRecord, error) {
	rows, err := q.Query(ctx, `SELECT p.code, p.name, p.currency, p.billing_interval, p.archived_at, p.created_at,
			v.id, v.version, v.effective_at, v.base_fee, v.minimum_commitment, v.included_credits, v.overage_policy
		FROM plans p JOIN plan_versions v ON v.plan_code = p.code
		WHERE $1::TEXT[] IS NULL OR p.code = ANY($1)
		ORDER BY p.code, v.version`, codes)
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	vs, err := pg.Collect(rows, func(r pgx.Row) (Plan, error) {
		var (
			v        Plan
			name     *string
			included []byte
		)
		if err := r.Scan(&v.Code, &name, &v.Currency, &v.Interval, &v.ArchivedAt, &v.CreatedAt, &v.VersionID, &v.Version,
			&v.EffectiveAt, &v.BaseFee, &v.MinimumCommitment, &included, &v.OveragePolicy); err != nil {
			return v, err
		}
		if name != nil {
			v.Name = *name
		}
		v.EffectiveAt, v.CreatedAt = v.EffectiveAt.UTC(), v.CreatedAt.UTC()
		if v.ArchivedAt != nil {
			t := v.ArchivedAt.UTC()
			v.ArchivedAt = &t
		}
		return v, json.Unmarshal(included, &v.IncludedCredits)
	})
	if err != nil {
		return nil, fmt.Errorf("read plans: %w", err)
	}
	var out []planRecord
	for _, v := range vs {
		if len(out) == 0 || out[len(out)-1].code != v.Code {
			out = append(out, planRecord{code: v.Code})
		}
		out[len(out)-1].versions = append(out[len(out)-1].versions, v)
	}
	for i := range out {
		refs := make([]VersionRef, len(out[i].versions))
		for j, v := range out[i].versions {
			refs[j] = VersionRef{Version: v.Version, EffectiveAt: v.EffectiveAt}
		}
		for j := range out[i].versions {
			out[i].versions[j].Versions = slices.Clone(refs)
		}
	}
	return out, nil
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
