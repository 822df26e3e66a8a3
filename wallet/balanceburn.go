package wallet

import (
	"time"

	"github.com/creditledger/creditledger/ledger"
)

// The balance cache's burn rates: a wallet's consumption over the
// RunwayWindow, for the runway of a balance answered from memory. It is a
// 7-day sum, read with a query (burnedSQL), kept per wallet for
// BurnMaxAge, then answered stale while one read refreshes it behind.

const (
	// A burn rate older than BurnMaxAge is still answered, for up to
	// burnStaleFactor times that age, while one read refreshes it in the
	// background: a 7-day average does not move in minutes, and a read
	// must not wait for the burn query of a database busy with ingest.
	burnStaleFactor = 10
	// burnRefreshes bounds the background refreshes running at once.
	burnRefreshes = 4
)

type burnEntry struct {
	burned ledger.Amount // consumed over RunwayWindow up to at
	at     time.Time
}

// burnAt is the wallet's cached consumption over RunwayWindow, if read
// less than the burn age before now; refresh says the caller should read
// it again in the background (it is older than that, but less than
// burnStaleFactor times: see claimRefresh).
func (c *BalanceCache) burnAt(id WalletID, now time.Time) (burned ledger.Amount, ok, refresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.burns[id]
	if !found || now.Before(e.at) {
		return ledger.Amount{}, false, false
	}
	age := now.Sub(e.at)
	switch {
	case age < c.burnAge:
		return e.burned, true, false
	case age < burnStaleFactor*c.burnAge:
		return e.burned, true, true
	}
	return ledger.Amount{}, false, false
}

// claimRefresh reserves id's background burn refresh: false when one runs
// already for it, or burnRefreshes run.
func (c *BalanceCache) claimRefresh(id WalletID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshing[id] || len(c.refreshing) >= burnRefreshes {
		return false
	}
	if c.refreshing == nil {
		c.refreshing = map[WalletID]bool{}
	}
	c.refreshing[id] = true
	return true
}

func (c *BalanceCache) refreshed(id WalletID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.refreshing, id)
}

func (c *BalanceCache) setBurn(id WalletID, burned ledger.Amount, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.burns[id]; !ok {
		for victim := range c.burns {
			if len(c.burns) < c.size {
				break
			}
			delete(c.burns, victim)
		}
	}
	c.burns[id] = burnEntry{burned: burned, at: at}
}
