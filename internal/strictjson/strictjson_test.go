package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	many := func(extra string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 40 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(extra + "}")
		return b.String()
	}
	for _, tc := range []struct {
		name  string
		in    string
		path  string // "" when accepted
		other string
		why   error
	}{
		{"empty object", `{}`, "", "", nil},
		{"scalars", `[1, -0.5e+3, "x", true, false, null]`, "", "", nil},
		{"one key in two objects", `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`, "", "", nil},
		{"keys that only look alike", `{"a":1,"a ":2,"á":3,"ab":4}`, "", "", nil},
		{"many keys", many(`"K":0`), "", "", nil},

		{"duplicate", `{"a":1,"a":2}`, "a", "a", ErrDuplicateKey},
		{"duplicate after escaping", `{"amount":"1","\u0061mount":"2"}`, "amount", "amount", ErrDuplicateKey},
		{"case variant", `{"amount":"1","Amount":"2"}`, "Amount", "amount", ErrCaseVariant},
		{"long s folds to s", `{"s":1,"\u017F":2}`, "ſ", "s", ErrCaseVariant},
		{"Kelvin sign folds to k", `{"kind":1,"\u212Aind":2}`, "\u212Aind", "kind", ErrCaseVariant},
		{"nested", `{"x":[{"a":1},{"b":1,"B":2}]}`, "x.1.B", "b", ErrCaseVariant},
		{"duplicate in a large object", many(`"k7":0`), "k7", "k7", ErrDuplicateKey},
		{"case variant in a large object", many(`"K39":0`), "K39", "k39", ErrCaseVariant},
		{"escapes and text read alike", `{"\u00e9":1,"é":2}`, "é", "é", ErrDuplicateKey},
		{"invalid UTF-8 in a key", "{\"a\":{\"\xff\":1}}", "a.\"\ufffd\"", "", ErrInvalidUTF8},
		{"invalid UTF-8 in a value", "{\"a\":[\"ok\",\"\xc3\"]}", "a.1", "", ErrInvalidUTF8},
		{"lone high surrogate", `{"a":"\ud800"}`, "a", "", ErrInvalidUTF8},
		{"high surrogate then another escape", `{"a":"\ud800\u0041"}`, "a", "", ErrInvalidUTF8},
		{"lone low surrogate in a key", `{"\udc00":1}`, "\"\ufffd\"", "", ErrInvalidUTF8},
		{"surrogate pair", `{"a":"\ud83d\ude00","b":"\\ud800"}`, "", "", nil},
		{"NUL keys are quoted in the path", `{"m":{"a\u0000":1,"a\u0000":2}}`, `m."a\x00"`, "a\x00", ErrDuplicateKey},
		{"first refusal is reported", `{"a":1,"a":2,"b":1,"B":2}`, "a", "a", ErrDuplicateKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.in))
			if tc.why == nil {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want nil", tc.in, err)
				}
				return
			}
			var ke *Error
			if !errors.As(err, &ke) || !errors.Is(err, tc.why) {
				t.Fatalf("Check(%s) = %v, want an Error of %v", tc.in, err, tc.why)
			}
			if ke.Path != tc.path || ke.Other != tc.other {
				t.Fatalf("path %q other %q, want %q and %q", ke.Path, ke.Other, tc.path, tc.other)
			}
			if strings.ContainsRune(ke.Error(), 0) || strings.ContainsRune(ke.Path, utf8.RuneError) && !strings.Contains(ke.Path, `"`) {
				t.Fatalf("the error carries a NUL: %q", ke.Error())
			}
		})
	}
}

// Malformed JSON is a SyntaxError exactly where encoding/json says it is
// malformed, even when a key was refused before the fault.
func TestCheckSyntax(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, in := range []string{
		``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `{"a":1 "b":2}`, `{'a':1}`, `{a:1}`,
		`01`, `1.`, `.5`, `1e`, `1e+`, `-`, `+1`, `tru`, `nul`, `NaN`, `"\x"`, `"\u12"`, `"\u12g4"`,
		"\"a\x01\"", `"abc`, `{"a":1}}`, `{"a":1} {"a":1}`, `[1] x`, `{"a":1,"a":2,`, deep(10001),
	} {
		err := Check([]byte(in))
		var syntax *SyntaxError
		if !errors.As(err, &syntax) {
			t.Errorf("Check(%.40q) = %v, want a SyntaxError", in, err)
		}
		if json.Valid([]byte(in)) {
			t.Errorf("json.Valid(%.40q): the test's list is wrong", in)
		}
	}
	if err := Check([]byte(deep(10000))); err != nil {
		t.Errorf("10000 levels, encoding/json's limit: %v", err)
	}
}

type inner struct {
	Code string `json:"code"`
}

type Embedded struct {
	Note string `json:"note"`
}

type request struct {
	Amount   string            `json:"amount"`
	Inner    *inner            `json:"inner"`
	List     []inner           `json:"list"`
	ByName   map[string]inner  `json:"by_name"`
	Meta     json.RawMessage   `json:"meta"`
	When     *time.Time        `json:"when"`
	Batch    []json.RawMessage `json:"batch" strictjson:"-"`
	Untagged int
	Embedded
}

func TestUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		path string // "" when accepted
		why  error
	}{
		{"exact names", `{"amount":"1","inner":{"code":"c"},"list":[{"code":"d"}],"by_name":{"X":{"code":"e"}},
			"meta":{"A":1,"a b":2},"when":"2025-01-01T00:00:00Z","Untagged":1,"note":"n"}`, "", nil},
		{"field in upper case", `{"AMOUNT":"3"}`, "AMOUNT", ErrFieldCase},
		{"nested field in another case", `{"inner":{"Code":"c"}}`, "inner.Code", ErrFieldCase},
		{"field of a list element", `{"list":[{"code":"a"},{"CODE":"b"}]}`, "list.1.CODE", ErrFieldCase},
		{"field of a map value", `{"by_name":{"x":{"cOde":"b"}}}`, "by_name.x.cOde", ErrFieldCase},
		{"Go name in another case", `{"untagged":1}`, "untagged", ErrFieldCase},
		{"promoted field", `{"Note":"n"}`, "Note", ErrFieldCase},
		{"case variant in raw JSON", `{"meta":{"a":1,"A":2}}`, "meta.A", ErrCaseVariant},
		{"a type that decodes itself keeps its names", `{"when":"2025-01-01T00:00:00Z","WHEN":"x"}`, "WHEN", ErrCaseVariant},
		{"a deferred field is not looked into", "{\"batch\":[{\"a\":1,\"a\":2},{\"B\":1,\"b\":\"\xff\\ud800\"}]}", "", nil},
		{"but its siblings are", `{"batch":[],"Batch":[]}`, "Batch", ErrCaseVariant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v request
			err := Unmarshal([]byte(tc.in), &v)
			if tc.why == nil {
				if err != nil {
					t.Fatalf("Unmarshal(%s) = %v", tc.in, err)
				}
				return
			}
			var ke *Error
			if !errors.As(err, &ke) || !errors.Is(err, tc.why) || ke.Path != tc.path {
				t.Fatalf("Unmarshal(%s) = %v, want %v at %s", tc.in, err, tc.why, tc.path)
			}
		})
	}
	t.Run("the decoder's own errors pass through", func(t *testing.T) {
		var v request
		var typ *json.UnmarshalTypeError
		if err := Unmarshal([]byte(`{"amount":1}`), &v); !errors.As(err, &typ) || typ.Field != "amount" {
			t.Errorf("wrong type: %v", err)
		}
		if err := Unmarshal([]byte(`{"amuont":"1"}`), &v); err == nil || !strings.Contains(err.Error(), `unknown field "amuont"`) {
			t.Errorf("unknown field: %v", err)
		}
		var syntax *json.SyntaxError
		if err := Unmarshal([]byte(`{"amount":"1","amount":x}`), &v); !errors.As(err, &syntax) {
			t.Errorf("malformed after a duplicate: %v, want encoding/json's SyntaxError", err)
		}
		if err := Unmarshal([]byte(`{"amount":"1"} {"amount":"2"}`), &v); !errors.Is(err, ErrTrailingData) {
			t.Errorf("two values: %v", err)
		}
	})
}

func TestErrorDetail(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Path: "a", Key: "a", Other: "a", Err: ErrDuplicateKey}, "a: appears more than once in its object; send each key once"},
		{&Error{Path: "Amount", Key: "Amount", Other: "amount", Err: ErrCaseVariant},
			`Amount: differs only in case from "amount" in the same object; keys are case-sensitive, send one`},
		{&Error{Path: "AMOUNT", Key: "AMOUNT", Other: "amount", Err: ErrFieldCase},
			`AMOUNT: unknown field; did you mean "amount"? field names are case-sensitive`},
		{&Error{Path: "metadata.note", Err: ErrInvalidUTF8},
			`metadata.note: is not UTF-8 text (an invalid byte, or a \u escape of half a surrogate pair); JSON is UTF-8`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
