package portal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// view is everything the page shows, formatted: the template only places
// text.
type view struct {
	CustomerID, CustomerName string
	PeriodStart, PeriodEnd   string
	Wallets                  []walletView
	Meters                   []meterView
	Alerts                   []alertView
	Invoices                 []invoiceView
	Generated                string
}

type walletView struct {
	ID, Asset, Unit          string
	Available, Held, Overage string
	OverageOwed              bool
	BurnPerDay, DepletesAt   string // "" without burn
	DaysLeft                 string
	RunwayLow                bool
	Grants                   []grantView
}

type grantView struct {
	Kind, Remaining, Amount, Expires string
	UsedPercent                      int
}

type meterView struct {
	Code, Name, Total string
	Chart             chart
}

type alertView struct {
	When, Title, Detail, Kind string
}

type invoiceView struct {
	ID, Number, Period, Status, Total, Issued string
}

// alertTopics are the outbox topics the page lists as alerts fired.
var alertTopics = []string{wallet.TopicThresholdReached, wallet.TopicDepleted, wallet.TopicOverageStarted, wallet.TopicRunwayLow}

// load reads the customer's page. Every read is by customer (or by its
// wallets, listed by customer): nothing of another customer can appear.
func (p *Portal) load(ctx context.Context, customer string) (view, error) {
	now := p.cfg.Now().UTC()
	v := view{CustomerID: customer, Generated: now.Format("2 Jan 2006, 15:04 UTC")}
	c, err := p.cfg.Wallets.Customer(ctx, customer)
	if err != nil {
		return v, err
	}
	v.CustomerName = c.Name
	wallets, err := p.cfg.Wallets.WalletsOf(ctx, customer)
	if err != nil {
		return v, err
	}
	// The period the usage reports default to: the subscription's, else
	// the oldest wallet's cycle, else the calendar month.
	start, end, err := p.cfg.Meters.Period(ctx, customer, now)
	if err != nil {
		return v, err
	}
	v.PeriodStart, v.PeriodEnd = longDay(start), longDay(end.Add(-time.Nanosecond))
	var ids []uuid.UUID
	for _, w := range wallets {
		wv, err := p.walletView(ctx, w, now)
		if err != nil {
			return v, err
		}
		v.Wallets = append(v.Wallets, wv)
		ids = append(ids, uuid.UUID(w.ID))
	}
	if v.Meters, err = p.usage(ctx, customer, start, now); err != nil {
		return v, err
	}
	if v.Alerts, err = p.alerts(ctx, ids, wallets); err != nil {
		return v, err
	}
	invs, _, err := p.cfg.Bills.Invoices(ctx, customer, nil, 24)
	if err != nil {
		return v, err
	}
	for _, inv := range invs {
		iv := invoiceView{ID: inv.ID.String(), Period: shortDay(inv.PeriodStart) + " – " + shortDay(inv.PeriodEnd.Add(-time.Nanosecond)),
			Status: inv.Status, Issued: shortDay(inv.CreatedAt),
			Total: formatMoney(inv.Total.Decimal(), inv.Currency, inv.MinorUnits)}
		if inv.Number != nil {
			iv.Number = *inv.Number
		}
		v.Invoices = append(v.Invoices, iv)
	}
	return v, nil
}

func (p *Portal) walletView(ctx context.Context, w wallet.Wallet, now time.Time) (walletView, error) {
	b, err := p.cfg.Wallets.Balance(ctx, w.ID, nil)
	if err != nil {
		return walletView{}, err
	}
	u, err := p.unitOf(ctx, w.Asset)
	if err != nil {
		return walletView{}, err
	}
	wv := walletView{ID: w.ID.String(), Asset: w.Asset, Unit: u.label(),
		Available: u.format(b.Available), Held: u.format(b.Held), Overage: u.format(b.Overage), OverageOwed: b.Overage.IsPositive()}
	if b.BurnRatePerDay != nil && b.DepletesAt != nil {
		wv.BurnPerDay = u.format(*b.BurnRatePerDay)
		wv.DepletesAt = longDay(*b.DepletesAt)
		days := b.DepletesAt.Sub(now).Hours() / 24
		wv.DaysLeft = fmt.Sprintf("%.1f", days)
		if days >= 10 {
			wv.DaysLeft = fmt.Sprintf("%.0f", days)
		}
		wv.RunwayLow = days < 3
	}
	grants, err := p.cfg.Wallets.Grants(ctx, w.ID)
	if err != nil {
		return walletView{}, err
	}
	for _, g := range grants {
		if g.Status != wallet.GrantActive || !g.Remaining.IsPositive() {
			continue
		}
		gv := grantView{Kind: string(g.Kind), Remaining: u.format(g.Remaining), Amount: u.format(g.Amount), Expires: "Never expires"}
		if g.ExpiresAt != nil {
			gv.Expires = "Expires " + longDay(*g.ExpiresAt)
		}
		if g.Amount.IsPositive() {
			gv.UsedPercent = int(g.Amount.Decimal().Sub(g.Remaining.Decimal()).Mul(decimal.NewFromInt(100)).Div(g.Amount.Decimal()).IntPart())
		}
		wv.Grants = append(wv.Grants, gv)
	}
	return wv, nil
}

// unitOf is how an asset's amounts are written: a currency with its minor
// units, or credits.
func (p *Portal) unitOf(ctx context.Context, code string) (unit, error) {
	a, err := p.cfg.Wallets.Asset(ctx, code)
	if errors.Is(err, fault.NotFound) {
		return unit{code: code, minor: 2}, nil // undescribed: credits
	}
	if err != nil {
		return unit{}, err
	}
	u := unit{code: code, minor: 2}
	if a.Kind == wallet.AssetCurrency {
		u.money = true
		if a.MinorUnits != nil {
			u.minor = *a.MinorUnits
		} else {
			u.minor = wallet.MinorUnits(code)
		}
	}
	if a.Name != "" {
		u.name = a.Name
	}
	return u, nil
}

// usage is each meter's usage over [from, to) per day, the meters with
// none left out.
func (p *Portal) usage(ctx context.Context, customer string, from, to time.Time) ([]meterView, error) {
	meters, err := p.cfg.Meters.Meters(ctx)
	if err != nil {
		return nil, err
	}
	end := to.Truncate(24 * time.Hour).Add(24 * time.Hour)
	var out []meterView
	for _, m := range meters {
		u, err := p.cfg.Meters.Usage(ctx, customer, m.Code, from, end, metering.Day)
		if err != nil {
			return nil, err
		}
		if len(u.Series) == 0 {
			continue
		}
		out = append(out, meterView{Code: m.Code, Name: m.EventName, Total: groupDigits(u.Total.String()), Chart: newChart(u.Series, from, end)})
	}
	slices.SortFunc(out, func(a, b meterView) int {
		if a.Code < b.Code {
			return -1
		}
		return 1
	})
	return out, nil
}

// alerts are the last alerts the customer's wallets fired, newest first.
func (p *Portal) alerts(ctx context.Context, ids []uuid.UUID, wallets []wallet.Wallet) ([]alertView, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := p.cfg.DB.Pool.Query(ctx, `SELECT topic, owner_id, payload, created_at FROM outbox
		WHERE owner_id = ANY($1) AND topic = ANY($2) ORDER BY created_at DESC, id DESC LIMIT 20`, ids, alertTopics)
	if err != nil {
		return nil, fmt.Errorf("portal alerts: %w", err)
	}
	defer rows.Close()
	assets := map[uuid.UUID]string{}
	for _, w := range wallets {
		assets[uuid.UUID(w.ID)] = w.Asset
	}
	var out []alertView
	for rows.Next() {
		var (
			topic string
			owner uuid.UUID
			raw   []byte
			at    time.Time
		)
		if err := rows.Scan(&topic, &owner, &raw, &at); err != nil {
			return nil, err
		}
		out = append(out, describeAlert(topic, assets[owner], raw, at))
	}
	return out, rows.Err()
}
