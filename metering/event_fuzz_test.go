package metering

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/strictjson"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
)

// FuzzParseEvent fuzzes the one decoder of usage events, which NATS
// messages reach as they were published. It holds ParseEvent to:
//
//   - a refusal is a ledger.Rejection with a code of its own (invalid_json or
//     invalid_event) and an id and detail that PostgreSQL can store, so the
//     rejection can always be recorded;
//   - an accepted event has no duplicate or case-variant keys, its texts
//     pass the text checks, and PostgreSQL stores its properties as JSONB
//     and its ids as TEXT, so it cannot fail the batch it is applied in;
//   - an accepted event, marshalled, parses back to the same event.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"req-1","customer_id":"acme","event_name":"completion","properties":{"tokens":1200,"model":"gpt-4o"}}`,
		`{"event_id":"req-2","customer_id":"acme","event_name":"completion","timestamp":"2026-01-02T15:04:05.123456789+02:00"}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","properties":{"n":{"deep":[1,{"x":null}]},"s":"\u00e9\t<>&"}}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","event_name":"m"}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","Event_Name":"m"}`,
		`{"EVENT_ID":"e","customer_id":"c","event_name":"n"}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","properties":{"a":1,"a":2}}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","properties":{"a":"\u0000"}}`,
		`{"event_id":"e\u0000","customer_id":"c","event_name":"n"}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","properties":{"a":"\ud800"}}`,
		"{\"event_id\":\"e\",\"customer_id\":\"c\",\"event_name\":\"n\",\"properties\":{\"a\":\"\xff\"}}",
		"{\"event_id\":\"e\",\x00}",
		`{"event_id":"e","customer_id":"c","event_name":"n","properties":{"tokens":1e400,"small":1e-20000}}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","properties":{"tokens":"1200"}}`,
		`{"event_id":1,"customer_id":"c","event_name":"n"}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","timestamp":1700000000}`,
		`{"event_id":"e","customer_id":"c","event_name":"n","properties":[1]}`,
		`{"event_id":"e","customer_id":"c","event_name":"n"}}`,
		`{"event_id":"e","customer_id":"c","event_name":"n"`, `null`, `[]`, `"e"`, ``,
	} {
		f.Add([]byte(s))
	}
	testdb.Require(f, dsn)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = conn.Close(context.Background()) })
	received := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, props, err := ParseEvent(raw, received)
		if err != nil {
			var rej *ledger.Rejection
			switch {
			case !errors.As(err, &rej):
				t.Fatalf("%q: %v is not a Rejection", raw, err)
			case rej.Code != CodeInvalidJSON && rej.Code != CodeInvalidEvent:
				t.Fatalf("%q: rejected with code %s", raw, rej.Code)
			case text.Check("event_id", storableID(guessID(raw)), 128) != nil || !utf8.ValidString(rej.Detail) || strings.ContainsRune(rej.Detail, 0):
				t.Fatalf("%q: a rejection PostgreSQL cannot store: %+v", raw, rej)
			}
			return
		}
		if err := strictjson.Check(raw); err != nil {
			t.Fatalf("%q: accepted: %v", raw, err)
		}
		for _, s := range []string{e.EventID, e.CustomerID, e.EventName} {
			if err := text.Check("event", s, 128); err != nil {
				t.Fatalf("%q: accepted %v", raw, err)
			}
		}
		if len(e.Properties) > 0 {
			if err := text.CheckJSON("properties", e.Properties, MaxEventBytes); err != nil {
				t.Fatalf("%q: accepted %v", raw, err)
			}
		}
		var stored string
		if err := conn.QueryRow(context.Background(), `SELECT $1::text || $2::text || $3::text || COALESCE($4::text::jsonb::text, '')`,
			e.EventID, e.CustomerID, e.EventName, nullable(e.Properties)).Scan(&stored); err != nil {
			t.Fatalf("%q: accepted; PostgreSQL refuses it: %v", raw, err)
		}

		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
		if b.Len() > MaxEventBytes+1 {
			return // the timestamp filled in made it too large to send again
		}
		e2, props2, err := ParseEvent(b.Bytes(), received.Add(time.Hour))
		if err != nil {
			t.Fatalf("%q parsed to %+v; marshalled, %s is rejected: %v", raw, e, b.Bytes(), err)
		}
		if e2.EventID != e.EventID || e2.CustomerID != e.CustomerID || e2.EventName != e.EventName ||
			!e2.Timestamp.Equal(*e.Timestamp) || !reflect.DeepEqual(props2, props) {
			t.Fatalf("%q parsed to %+v %v; %s to %+v %v", raw, e, props, b.Bytes(), e2, props2)
		}
	})
}

func nullable(raw json.RawMessage) *string {
	if len(raw) == 0 {
		return nil
	}
	s := string(raw)
	return &s
}
