package chaos

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// The hot-row overflow: amounts accept 26 integer digits, and the hot
// counter rows (revenue:usage per poster shard, NUMERIC(38,12)) are shared
// by every customer on a shard. These two events at UnitPrice fill the
// attacker's shard's row to just under 10^26: 99999999999999999999999996
// then 2.334 more, so the next few credits anyone on that shard is charged
// overflow it.
const (
	HotFillTokens = "33333333333333333333333332000000"
	HotTopTokens  = "778000"
)

// AttackEvent is an event whose tokens are written as given (a JSON number
// of any size, never through a float).
func AttackEvent(id, customer, tokens string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"event_id":%q,"customer_id":%q,"event_name":%q,"properties":{"tokens":%s}}`,
		id, customer, EventName, tokens))
}

// AttackCharge is what an attack event of tokens costs.
func AttackCharge(tokens string) decimal.Decimal {
	return Price.Mul(decimal.RequireFromString(tokens))
}

// CustomerOnShard is the first id prefix-<n> (n from 0) on shard, skipping
// the ids in avoid.
func CustomerOnShard(prefix string, shard int, avoid ...string) string {
	for n := 0; ; n++ {
		id := fmt.Sprintf("%s-%d", prefix, n)
		if Shard(id) == shard && !contains(avoid, id) {
			return id
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// NUL is the JSON escape of U+0000, which PostgreSQL stores in neither
// TEXT (22021) nor JSONB (22P05).
const NUL = `\u0000`

// rawJSON builds a JSON object from already-encoded members, so a poison
// string (NUL escapes, huge numbers) reaches ledgerd exactly as written.
func rawJSON(members ...string) json.RawMessage {
	return json.RawMessage("{" + strings.Join(members, ",") + "}")
}

// member is "name": value with value already JSON.
func member(name, value string) string { return fmt.Sprintf("%q:%s", name, value) }

// str is s as a JSON string whose text is written as given (so `\u0000`
// stays an escape).
func str(s string) string { return `"` + s + `"` }
