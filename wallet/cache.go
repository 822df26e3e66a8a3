package wallet

import (
	"slices"
	"sync"

	"github.com/creditledger/creditledger/ledger"
)

// walletCacheSize bounds the wallets kept in memory: about 200 bytes each,
// so at most a few megabytes.
const walletCacheSize = 1 << 16

// walletCache keeps wallets as they were created. Every field of Wallet and
// its overage account is fixed at creation (the rows change only in their
// reaction state, which Wallet does not carry), so a cached wallet can
// never be stale and needs no invalidation, not even between several
// ledgerd processes on one database. It spares each debit, hold and
// balance read the query that only resolved the wallet's customer and
// asset.
type walletCache struct {
	mu sync.RWMutex
	m  map[WalletID]cachedWallet
}

type cachedWallet struct {
	w        Wallet
	overage  ledger.AccountID
	accounts bool // its billable and rounding accounts are known to exist
}

func (c *walletCache) get(id WalletID) (Wallet, ledger.AccountID, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok {
		return Wallet{}, ledger.AccountID{}, false
	}
	// The caller owns what it gets: it must not write into the cache's slice.
	e.w.AlertThresholds = slices.Clone(e.w.AlertThresholds)
	return e.w, e.overage, true
}

func (c *walletCache) put(w Wallet, overage ledger.AccountID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[WalletID]cachedWallet)
	}
	if len(c.m) >= walletCacheSize {
		// Forget an arbitrary half (map order is random): cheaper than LRU
		// bookkeeping on every hit, and a miss costs only one query.
		n := 0
		for id := range c.m {
			if n >= walletCacheSize/2 {
				break
			}
			delete(c.m, id)
			n++
		}
	}
	w.AlertThresholds = slices.Clone(w.AlertThresholds)
	c.m[w.ID] = cachedWallet{w: w, overage: overage, accounts: c.m[w.ID].accounts}
}

// accountsOpened reports whether wallet id's billable and rounding accounts
// are known to exist.
func (c *walletCache) accountsOpened(id WalletID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id].accounts
}

// openedAccounts records that they do, if the wallet is in the map (it is
// after any read of it; evicted, the next ensure checks again, harmlessly).
func (c *walletCache) openedAccounts(id WalletID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		e.accounts = true
		c.m[id] = e
	}
}
