package wallet

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// Assets: what a wallet's unit is. Credits may be worth money — sold and
// invoiced in a currency at a unit price per credit — and a currency has
// minor units. An asset nobody described is unpriced credits, as every
// asset was before assets were described.
//
// Prices are never re-rated: every unit price a credits asset has had is
// kept in asset_rates from when it applied (the PUT's now), and a billing
// period converts at the rate in force at its START, so a change mid-period
// applies from the next period on.

// AssetKind is what an asset is.
type AssetKind string

const (
	AssetCredits  AssetKind = "credits"
	AssetCurrency AssetKind = "currency"
)

// Asset describes an asset. Currency and UnitPrice are set only for a
// priced credits asset; MinorUnits only for a currency.
type Asset struct {
	Code       string         `json:"code"`
	Kind       AssetKind      `json:"kind"`
	Currency   *string        `json:"currency"`
	UnitPrice  *ledger.Amount `json:"unit_price"`
	MinorUnits *int32         `json:"minor_units"`
	Name       string         `json:"name"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// Priced reports whether one credit of a is worth money now.
func (a Asset) Priced() bool {
	return a.Kind == AssetCredits && a.Currency != nil && a.UnitPrice != nil
}

// NewAsset is what PutAsset needs.
type NewAsset struct {
	Kind       AssetKind      `json:"kind"`
	Currency   *string        `json:"currency,omitempty"`
	UnitPrice  *ledger.Amount `json:"unit_price,omitempty"`
	MinorUnits *int32         `json:"minor_units,omitempty"`
	Name       string         `json:"name,omitempty"`
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// MinorUnits is the number of fractional digits of a currency's smallest
// unit (ISO 4217); 2 for anything else, credits included. An asset
// described as a currency may say otherwise (Service.MinorUnitsOf).
func MinorUnits(currency string) int32 {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// Money is credits × price: what credits are worth. It is exact whenever
// the product fits the ledger's scale (12 places), as it does for any
// credits and price of six places each; a finer product is rounded half
// to even at the twelfth place, nine orders below any minor unit.
func Money(credits decimal.Decimal, price decimal.Decimal) (ledger.Amount, error) {
	return ledger.NewAmount(credits.Mul(price).RoundBank(ledger.Scale))
}

const assetSelect = `SELECT code, kind, currency, unit_price, minor_units, name, created_at, updated_at FROM assets`

func scanAsset(r pgx.Row) (Asset, error) {
	var a Asset
	var kind string
	if err := r.Scan(&a.Code, &kind, &a.Currency, &a.UnitPrice, &a.MinorUnits, &a.Name, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return a, err
	}
	a.Kind = AssetKind(kind)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}

// Asset reads an asset's description; fault.NotFound if nobody described it.
func (s *Service) Asset(ctx context.Context, code string) (Asset, error) {
	a, err := scanAsset(s.db.Pool.QueryRow(ctx, assetSelect+` WHERE code = $1`, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return Asset{}, fault.NotFoundf("no asset %s", code)
	}
	if err != nil {
		return Asset{}, fmt.Errorf("read asset: %w", err)
	}
	return a, nil
}

// Assets lists the described assets by code.
func (s *Service) Assets(ctx context.Context) ([]Asset, error) {
	rows, err := s.db.Pool.Query(ctx, assetSelect+` ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("list assets: %w", err)
	}
	out, err := pg.Collect(rows, scanAsset)
	if err != nil {
		return nil, fmt.Errorf("list assets: %w", err)
	}
	if out == nil {
		out = []Asset{}
	}
	return out, nil
}

// RateAt is the unit price of credits asset code in force at t: the last
// rate that applied at or before t. ok is false when the asset had no price
// then (unpriced, or priced only later).
func (s *Service) RateAt(ctx context.Context, code string, t time.Time) (price ledger.Amount, ok bool, err error) {
	err = s.db.Pool.QueryRow(ctx, `SELECT unit_price FROM asset_rates WHERE asset = $1 AND effective_at <= $2
		ORDER BY effective_at DESC LIMIT 1`, code, t).Scan(&price)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Zero, false, nil
	}
	if err != nil {
		return ledger.Zero, false, fmt.Errorf("read rate of %s: %w", code, err)
	}
	return price, true, nil
}

// MinorUnitsOf is currency's minor units: as its asset describes them, or
// ISO 4217's (MinorUnits).
func (s *Service) MinorUnitsOf(ctx context.Context, currency string) (int32, error) {
	a, err := s.Asset(ctx, currency)
	switch {
	case errors.Is(err, fault.NotFound):
		return MinorUnits(currency), nil
	case err != nil:
		return 0, err
	case a.MinorUnits != nil:
		return *a.MinorUnits, nil
	}
	return MinorUnits(currency), nil
}

// PutAsset describes asset code, or changes its description. A kind never
// changes (409: wallets and rates already mean it), nor does a credits
// asset's currency once set (409: its rates are in it); a priced asset
// stays priced (a price is history, not a setting). A new unit price
// applies from now on: the rate history keeps the old one for periods that
// started before.
func (s *Service) PutAsset(ctx context.Context, code string, req NewAsset) (Asset, error) {
	if !assetPattern.MatchString(code) {
		return Asset{}, fault.Invalidf("code", "1 to 16 upper-case letters, digits or _, starting with a letter")
	}
	if err := checkText("name", req.Name, 200); err != nil {
		return Asset{}, err
	}
	switch req.Kind {
	case AssetCredits:
		if req.MinorUnits != nil {
			return Asset{}, fault.Invalidf("minor_units", "only for a currency")
		}
		if (req.Currency == nil) != (req.UnitPrice == nil) {
			if req.Currency == nil {
				return Asset{}, fault.Invalidf("currency", "required with unit_price")
			}
			return Asset{}, fault.Invalidf("unit_price", "required with currency")
		}
		if req.Currency != nil && !currencyPattern.MatchString(*req.Currency) {
			return Asset{}, fault.Invalidf("currency", "a currency code: 3 upper-case letters (ISO 4217, e.g. USD)")
		}
		if req.Currency != nil && *req.Currency == code {
			return Asset{}, fault.Invalidf("currency", "credits are not sold in themselves")
		}
		if req.UnitPrice != nil {
			if !req.UnitPrice.IsPositive() {
				return Asset{}, fault.Invalidf("unit_price", "must be greater than zero")
			}
			if ledger.CheckOpAmount(*req.UnitPrice) != nil {
				return Asset{}, fault.Invalidf("unit_price", "at most %s", ledger.MaxOpAmount)
			}
		}
	case AssetCurrency:
		if !currencyPattern.MatchString(code) {
			return Asset{}, fault.Invalidf("code", "a currency's code is 3 upper-case letters (ISO 4217)")
		}
		if req.UnitPrice != nil {
			return Asset{}, fault.Invalidf("unit_price", "only for credits: a currency is money itself")
		}
		if req.Currency != nil {
			return Asset{}, fault.Invalidf("currency", "only for credits")
		}
		if req.MinorUnits == nil {
			mu := MinorUnits(code)
			req.MinorUnits = &mu
		}
		if *req.MinorUnits < 0 || *req.MinorUnits > 6 {
			return Asset{}, fault.Invalidf("minor_units", "from 0 to 6")
		}
	default:
		return Asset{}, fault.Invalidf("kind", "must be credits or currency")
	}
	now := s.now().Truncate(time.Microsecond)
	err := s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		return putAsset(ctx, tx, code, req, now)
	})
	if err != nil {
		return Asset{}, err
	}
	return s.Asset(ctx, code)
}

func putAsset(ctx context.Context, tx pgx.Tx, code string, req NewAsset, now time.Time) error {
	old, err := scanAsset(tx.QueryRow(ctx, assetSelect+` WHERE code = $1 FOR UPDATE`, code))
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read asset: %w", err)
	}
	if req.Currency != nil {
		// The money credits are sold in is never credits itself.
		cur, err := scanAsset(tx.QueryRow(ctx, assetSelect+` WHERE code = $1`, *req.Currency))
		if err == nil && cur.Kind == AssetCredits {
			return fault.Invalidf("currency", "%s is a credits asset, not a currency", *req.Currency)
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read currency: %w", err)
		}
	}
	if req.Kind == AssetCredits && !exists {
		// A code some credits are sold in is a currency.
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM assets WHERE currency = $1`, code).Scan(&n); err != nil {
			return fmt.Errorf("read assets: %w", err)
		}
		if n > 0 {
			return fault.Invalidf("kind", "%s is the currency of credits assets", code)
		}
	}
	if exists {
		if old.Kind != req.Kind {
			return fault.Conflictf("", "asset %s is %s; its kind cannot change", code, old.Kind)
		}
		if old.Currency != nil && (req.Currency == nil || *req.Currency != *old.Currency) {
			if req.Currency == nil {
				return fault.Invalidf("unit_price", "asset %s is priced; a price cannot be removed, only changed", code)
			}
			return fault.Conflictf("", "asset %s is sold in %s; its currency cannot change", code, *old.Currency)
		}
		if _, err := tx.Exec(ctx, `UPDATE assets SET currency = $2, unit_price = $3, minor_units = $4, name = $5, updated_at = $6
			WHERE code = $1`, code, req.Currency, req.UnitPrice, req.MinorUnits, req.Name, now); err != nil {
			return fmt.Errorf("update asset: %w", err)
		}
	} else if _, err := tx.Exec(ctx, `INSERT INTO assets (code, kind, currency, unit_price, minor_units, name, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`, code, string(req.Kind), req.Currency, req.UnitPrice, req.MinorUnits, req.Name, now); err != nil {
		return fmt.Errorf("insert asset: %w", err)
	}
	if req.UnitPrice != nil && (old.UnitPrice == nil || !old.UnitPrice.Equal(*req.UnitPrice)) {
		if _, err := tx.Exec(ctx, `INSERT INTO asset_rates (asset, effective_at, unit_price) VALUES ($1, $2, $3)
			ON CONFLICT (asset, effective_at) DO UPDATE SET unit_price = excluded.unit_price`, code, now, req.UnitPrice); err != nil {
			return fmt.Errorf("insert rate: %w", err)
		}
	}
	return nil
}
