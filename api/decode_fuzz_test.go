package api

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/internal/strictjson"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// The fuzz targets below hold every request decoder to what the API
// promises of a body it accepts, not only to not panicking:
//
//   - a refusal is a problem (400 or 422), never an error that would be a 500;
//   - every key of an accepted object is a field's exact name, once;
//   - every string and raw JSON value in it is UTF-8 text, and raw JSON
//     has no duplicate or case-variant keys;
//   - every amount is in its one canonical spelling, which parses back to
//     the same amount;
//   - what it decoded, marshalled again, is accepted again and marshals to
//     the same bytes: the ledger and a client reading our echo agree.

// seeds are bodies worth starting from for any decoder: odd shapes, the
// lenient spellings the decoders refuse, text PostgreSQL cannot store.
var seeds = []string{
	``, ` `, `{}`, `null`, `[]`, `"x"`, `{"a":1}{}`, `{`, "\xff", "{\"description\":\"\xff\"}",
	`{"amount":"1","Amount":"2"}`, `{"AMOUNT":"3"}`, `{"amount":"1","amount":"2"}`, `{"\u0061mount":"1"}`,
	`{"amount":1}`, `{"amount":1e400}`, `{"amount":"1e400"}`, `{"amount":"99999999999999999999999999.999999999999"}`,
	`{"amount":"0.0000000000001"}`, `{"amount":"-0"}`, `{"amount":"1.50"}`, `{"amount":"01"}`,
	`{"description":"a\u0000b"}`, `{"description":"\ud800"}`, `{"metadata":{"a":1,"A":2}}`,
	`{"metadata":{"k":"\u0000","n":1e-20000}}`, `{"metadata":[1]}`, `{"priority":1e400}`, `{"priority":"5"}`,
	`{"id":"acme","name":"Acme\u0000"}`, `{"events":[{"a":1,"a":2}],"Events":[]}`,
}

// fuzzDecode fuzzes decodeBody into a T from seeds and the extra bodies.
func fuzzDecode[T any](f *testing.F, extra ...string) {
	for _, s := range append(slices.Clone(seeds), extra...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v T
		err := decodeBody(body, &v)
		if err != nil {
			wantProblem(t, body, err)
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return
		}
		exactKeys(t, body, reflect.TypeFor[T]())
		checkValues(t, body, reflect.ValueOf(v))
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%q decoded to %+v, which does not marshal: %v", body, v, err)
		}
		var w T
		if err := decodeBody(again, &w); err != nil {
			t.Fatalf("%q decoded to %+v; marshalled, %s is refused: %v", body, v, again, err)
		}
		if b, _ := json.Marshal(w); !bytes.Equal(b, again) {
			t.Fatalf("%q: marshalled %s, decoded again %s", body, again, b)
		}
	})
}

// wantProblem checks that a refusal is a problem the client is to blame for.
func wantProblem(t *testing.T, body []byte, err error) {
	t.Helper()
	// As the handler answers it: a problem, or an error of the one
	// vocabulary (fault) that problem.From maps.
	p := problem.From(err)
	if p.Status >= 500 {
		t.Fatalf("%q: %v would be a %d", body, err, p.Status)
	}
	if p.Code != problem.BadRequest && p.Code != problem.Validation {
		t.Fatalf("%q: problem %s, want bad_request or validation_error", body, p.Code)
	}
}

// exactKeys checks that each top-level key of body is the exact JSON name
// of a field of t.
func exactKeys(t *testing.T, body []byte, typ reflect.Type) {
	t.Helper()
	if typ.Kind() != reflect.Struct {
		return
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return // null
	}
	names := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	for k := range top {
		if !names[k] {
			t.Fatalf("%q: accepted key %q, no field's exact name (fields %v)", body, k, slices.Sorted(maps.Keys(names)))
		}
	}
}

var canonicalAmount = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$`)

var (
	amountType = reflect.TypeFor[ledger.Amount]()
	rawType    = reflect.TypeFor[json.RawMessage]()
)

// checkValues walks a decoded value: strings are UTF-8, raw JSON is checked
// text, amounts are canonical. Fields tagged strictjson:"-" are raw input
// for another decoder and are left to it.
func checkValues(t *testing.T, body []byte, v reflect.Value) {
	t.Helper()
	switch {
	case v.Type() == amountType:
		a := v.Interface().(ledger.Amount)
		s := a.String()
		back, err := ledger.ParseAmount(s)
		if err != nil || !back.Equal(a) || back.String() != s || !canonicalAmount.MatchString(s) {
			t.Fatalf("%q: amount %s is not canonical, or does not parse back (%v)", body, s, err)
		}
		return
	case v.Type() == rawType:
		if raw := v.Bytes(); len(raw) > 0 {
			if err := strictjson.Check(raw); err != nil {
				t.Fatalf("%q: accepted raw JSON %q: %v", body, raw, err)
			}
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkValues(t, body, v.Elem())
		}
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			t.Fatalf("%q: accepted a string that is not UTF-8: %q", body, v.String())
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			checkValues(t, body, v.Index(i))
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			checkValues(t, body, it.Key())
			checkValues(t, body, it.Value())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("strictjson") != "-" {
				checkValues(t, body, v.Field(i))
			}
		}
	}
}

func FuzzDecodeCustomer(f *testing.F) {
	fuzzDecode[createCustomerRequest](f, `{"id":"acme","name":"Acme","email":"a@acme.example","metadata":{"tier":"gold"}}`,
		`{"id":"acme","ID":"other"}`, `{"Id":"acme"}`)
}

func FuzzDecodeWallet(f *testing.F) {
	fuzzDecode[wallet.NewWallet](f, `{"customer_id":"acme","asset":"CREDITS","overage_policy":"allow","overage_limit":"5","alert_thresholds":[50,80]}`,
		`{"customer_id":"acme","customer_ID":"evil"}`, `{"overage_limit":5}`, `{"alert_thresholds":[1e400]}`)
}

func FuzzDecodeGrant(f *testing.F) {
	fuzzDecode[wallet.NewGrant](f, `{"amount":"100","kind":"paid","priority":10,"expires_at":"2030-01-01T00:00:00Z","cost_basis":"9.99","description":"launch pack","metadata":{"order":"o-1"}}`,
		`{"amount":"100","kind":"paid","\u212Aind":"promotional"}`, `{"expires_at":"tomorrow"}`, `{"effective_at":"2030-01-01T00:00:00+02:00"}`)
}

func FuzzDecodeDebit(f *testing.F) {
	fuzzDecode[wallet.NewDebit](f, `{"amount":"12.5","description":"tokens","metadata":{"model":"gpt-4o"}}`,
		`{"amount":"1","de\u017Fcription":"x"}`, `{"amount":"1","metadata":{"a":{"b":1,"B":2}}}`)
}

func FuzzDecodeHold(f *testing.F) {
	fuzzDecode[wallet.NewHold](f, `{"amount":"5","expires_in_seconds":300,"metadata":{"job":"j-1"}}`,
		`{"amount":"5","expires_in_seconds":1e400}`, `{"amount":"5","expires_in_seconds":"300"}`)
}

func FuzzDecodeCapture(f *testing.F) {
	fuzzDecode[captureRequest](f, `{"amount":"2"}`, `{"amount":null}`, `{"amount":"2","amount":"3"}`)
}

func FuzzDecodeNoBody(f *testing.F) {
	fuzzDecode[noBody](f, `{"reason":"x"}`)
}

func FuzzDecodeFailTopup(f *testing.F) {
	fuzzDecode[failTopupRequest](f, `{"reason":"card declined"}`, `{"reason":"a","Reason":"b"}`)
}

func FuzzDecodeAutoTopup(f *testing.F) {
	fuzzDecode[wallet.NewAutoTopup](f, `{"threshold":"30","target_balance":"150","payment":"confirm","kind":"paid","max_per_day":3,"enabled":true}`,
		`{"threshold":30}`, `{"threshold":"30","Threshold":"0"}`, `{"max_per_day":1e400}`)
}

func FuzzDecodeKey(f *testing.F) {
	fuzzDecode[createKeyRequest](f, `{"scope":"portal","customer_id":"acme","name":"ci","expires_in_seconds":3600}`,
		`{"scope":"read","Scope":"admin"}`, `{"SCOPE":"admin"}`)
}

func FuzzDecodePortalToken(f *testing.F) {
	fuzzDecode[portalTokenRequest](f, `{"name":"dashboard","expires_in_seconds":3600}`, `{"expires_in_seconds":-1}`)
}

func FuzzDecodeWebhookEndpoint(f *testing.F) {
	fuzzDecode[createWebhookEndpointRequest](f, `{"url":"https://example.com/hooks","event_types":["wallet.depleted"]}`,
		`{"url":"https://a.example","URL":"http://127.0.0.1"}`, `{"event_types":"wallet.depleted"}`)
}

func FuzzDecodeMeter(f *testing.F) {
	fuzzDecode[createMeterRequest](f, `{"code":"tokens","event_name":"completion","aggregation":"sum","property":"tokens","filters":{"model":["gpt"]},"group_by":["model"]}`,
		`{"filters":{"model":["a"],"MODEL":["b"]}}`, `{"group_by":"model"}`)
}

// FuzzDecodeEvents fuzzes the envelope of POST /events. The events in it
// are ParseEvent's (FuzzParseEvent in metering): here, only that the
// envelope is strict and each event it hands on is one JSON value.
func FuzzDecodeEvents(f *testing.F) {
	fuzzDecode[ingestRequest](f, `{"events":[{"event_id":"e1","customer_id":"acme","event_name":"completion","properties":{"tokens":1200}}]}`,
		`{"events":[],"EVENTS":[]}`, `{"Events":[{}]}`, "{\"events\":[{\"event_id\":\"\xff\",\"event_id\":1}]}", `{"events":["x",1,null]}`)
}

// FuzzDecodePrice fuzzes the body of POST /prices. What it accepts is a
// valid price whose JSON, with the two keys beside it, decodes to the same
// price.
func FuzzDecodePrice(f *testing.F) {
	for _, s := range append(slices.Clone(seeds),
		`{"meter_code":"tokens","asset":"CREDITS","model":"per_unit","unit_price":"0.000003","dimensions":{"model":"gpt"}}`,
		`{"meter_code":"tokens","asset":"CREDITS","model":"graduated","tiers":[{"up_to":"1000","unit_price":"0.01"},{"up_to":null,"unit_price":"0.008","flat_price":"1"}],"free_units":"10"}`,
		`{"meter_code":"t","asset":"USD","model":"package","package_size":"0.5","package_price":"10"}`,
		`{"meter_code":"t","asset":"USD","model":"per_unit","unit_price":"1","Unit_Price":"0"}`,
		`{"meter_code":"t","asset":"USD","model":"volume","tiers":[{"unit_price":"1","UP_TO":"5"}]}`,
		`{"meter_code":"t","asset":"USD","model":"per_unit","unit_price":1e400}`,
		`{"meter_code":"t","asset":"USD","model":"per_unit","unit_price":"1","dimensions":{"m":"a","M":"b"}}`,
		`{"meter_code":"t","asset":"USD","model":"per_unit","unit_price":"1","dimensions":{"m":"\u0000"}}`,
	) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		np, err := decodePrice(body)
		if err != nil {
			wantProblem(t, body, err)
			return
		}
		if err := np.Price.Validate(); err != nil {
			t.Fatalf("%q: accepted an invalid price: %v", body, err)
		}
		if err := strictjson.Check(body); err != nil {
			t.Fatalf("%q: accepted: %v", body, err)
		}
		checkValues(t, body, reflect.ValueOf(np.MeterCode))
		checkValues(t, body, reflect.ValueOf(np.Asset))
		checkValues(t, body, reflect.ValueOf(np.Price.Dimensions))
		model, err := json.Marshal(np.Price)
		if err != nil {
			t.Fatal(err)
		}
		head, _ := json.Marshal(map[string]string{"meter_code": np.MeterCode, "asset": np.Asset})
		again := append(append(head[:len(head)-1], ','), model[1:]...)
		back, err := decodePrice(again)
		if err != nil {
			t.Fatalf("%q decoded to %+v; %s is refused: %v", body, np, again, err)
		}
		if back.MeterCode != np.MeterCode || back.Asset != np.Asset || !back.Price.Equal(np.Price) {
			t.Fatalf("%q decoded to %+v, %s to %+v", body, np, again, back)
		}
	})
}
