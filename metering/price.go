package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/pricing"
	"github.com/google/uuid"
)

// Price is a stored price.
type Price struct {
	ID        uuid.UUID `json:"id"`
	MeterID   MeterID   `json:"-"`
	MeterCode string    `json:"meter_code"`
	Asset     string    `json:"asset"`
	pricing.Price
	CreatedAt time.Time `json:"created_at"`
}

// MarshalJSON flattens the price model's fields next to the record's.
func (p Price) MarshalJSON() ([]byte, error) {
	model, err := json.Marshal(p.Price)
	if err != nil {
		return nil, err
	}
	head, err := json.Marshal(struct {
		ID        uuid.UUID `json:"id"`
		MeterCode string    `json:"meter_code"`
		Asset     string    `json:"asset"`
		CreatedAt time.Time `json:"created_at"`
	}{p.ID, p.MeterCode, p.Asset, p.CreatedAt})
	if err != nil {
		return nil, err
	}
	if len(model) <= 2 {
		return head, nil
	}
	return append(append(head[:len(head)-1], ','), model[1:]...), nil
}

// NewPrice is what CreatePrice needs.
type NewPrice struct {
	MeterCode string
	Asset     string
	Price     pricing.Price
}

// CreatePrice stores a price for a meter; ErrExists if the meter already
// has one for the asset and dimensions.
func (s *Service) CreatePrice(ctx context.Context, np NewPrice) (Price, error) {
	if err := np.Price.Validate(); err != nil {
		return Price{}, err // fault.Invalid, naming the field
	}
	if !assetPattern(np.Asset) {
		return Price{}, fault.Invalidf("asset", "1 to 16 upper-case letters, digits or _, starting with a letter (e.g. CREDITS, USD)")
	}
	m, err := s.meterByCode(ctx, np.MeterCode)
	if errors.Is(err, fault.NotFound) {
		return Price{}, fault.Invalidf("meter_code", "no meter %q", np.MeterCode)
	}
	if err != nil {
		return Price{}, err
	}
	for d := range np.Price.Dimensions {
		if !contains(m.GroupBy, d) {
			return Price{}, fault.Invalidf("dimensions", "%q is not in the meter's group_by %v", d, m.GroupBy)
		}
	}
	// The asset's system accounts exist before the first event needs them.
	if _, err := s.wallets.System(ctx, np.Asset); err != nil {
		return Price{}, err
	}
	spec, err := json.Marshal(np.Price)
	if err != nil {
		return Price{}, err
	}
	p := Price{ID: uuid.New(), MeterID: m.ID, MeterCode: m.Code, Asset: np.Asset, Price: np.Price, CreatedAt: s.l.Now()}
	_, err = s.db.Pool.Exec(ctx, `INSERT INTO prices (id, meter_id, asset, spec, dimensions_key, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		p.ID, p.MeterID, p.Asset, string(spec), np.Price.DimensionKey(), p.CreatedAt)
	if pg.IsUnique(err, "") {
		return Price{}, fault.Existsf("meter %q already has a %s price for these dimensions", m.Code, np.Asset)
	}
	if err != nil {
		return Price{}, fmt.Errorf("create price: %w", err)
	}
	return p, nil
}

// Prices lists every price.
func (s *Service) Prices(ctx context.Context) ([]Price, error) {
	return queryPrices(ctx, s.db.Pool, &s.specs, "")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func assetPattern(s string) bool {
	if len(s) < 1 || len(s) > 16 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
