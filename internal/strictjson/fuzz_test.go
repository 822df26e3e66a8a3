package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var seeds = []string{
	`{}`, `[]`, `"x"`, `1`, `-0.5e+3`, `null`, `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`,
	`{"a":1,"a":2}`, `{"amount":"1","Amount":"2"}`, `{"AMOUNT":"3"}`, `{"amount":"1","\u0061mount":"2"}`,
	`{"s":1,"\u017F":2}`, `{"kind":1,"\u212Aind":2}`, "{\"\xff\":1,\"\xfe\":2}", `{"m":{"a\u0000":1}}`,
	`{"amount":"1","amount":`, `{"a":1}}`, `[1,]`, `{"inner":{"Code":"c"}}`, `{"batch":[{"a":1,"a":2}]}`,
	`{"meta":{"a":1,"A":2}}`, `{"list":[{"code":"a"},{"CODE":"b"}]}`, `{"Note":"n","untagged":1}`,
	`{"amount":123456789012345678901234567890}`, `{"amount":"\ud800"}`, strings.Repeat("[", 100),
}

// FuzzCheck holds the scanner to encoding/json: a SyntaxError exactly when
// json.Valid refuses the input, and a KeyError exactly when a plain reading
// with json.Decoder finds two keys of one object equal under
// strings.EqualFold (which is how encoding/json matches them).
func FuzzCheck(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data)
		var syntax *SyntaxError
		if got, want := errors.As(err, &syntax), !json.Valid(data); got != want {
			t.Fatalf("Check(%q) = %v; json.Valid says valid=%v", data, err, !want)
		}
		if syntax != nil {
			return
		}
		collide, rerr := collision(json.NewDecoder(bytes.NewReader(data)))
		if rerr != nil {
			t.Fatalf("the reference cannot read valid JSON %q: %v", data, rerr)
		}
		var ke *KeyError
		if got := errors.As(err, &ke); got != collide {
			t.Fatalf("Check(%q) = %v; the reference finds a collision: %v", data, err, collide)
		}
		if ke != nil && (strings.ContainsRune(ke.Path, 0) || !strings.EqualFold(ke.Key, ke.Other)) {
			t.Fatalf("Check(%q): %#v", data, ke)
		}
	})
}

// collision reads one value token by token and reports whether an object
// in it has two keys equal under strings.EqualFold.
func collision(dec *json.Decoder) (bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return false, nil
	}
	found := false
	var keys []string
	for dec.More() {
		if d == '{' {
			tok, err := dec.Token()
			if err != nil {
				return false, err
			}
			k := tok.(string)
			found = found || slices.ContainsFunc(keys, func(p string) bool { return strings.EqualFold(p, k) })
			keys = append(keys, k)
		}
		f, err := collision(dec)
		if err != nil {
			return false, err
		}
		found = found || f
	}
	_, err = dec.Token() // the closing delimiter
	return found, err
}

// FuzzUnmarshal holds Unmarshal to being encoding/json with refusals only:
// what it accepts encoding/json decodes to the same value, with every key
// of an object decoded into a struct spelt exactly as a field; what
// encoding/json refuses it refuses; and what only it refuses is a
// KeyError.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want request
		err := Unmarshal(data, &got)
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		refErr := dec.Decode(&want)
		if refErr == nil && dec.More() {
			refErr = errors.New("trailing data")
		}
		var ke *KeyError
		switch {
		case refErr != nil && err == nil:
			t.Fatalf("Unmarshal(%q) accepts what encoding/json refuses: %v", data, refErr)
		case refErr == nil && err != nil && !errors.As(err, &ke) && !errors.Is(err, ErrTrailingData):
			t.Fatalf("Unmarshal(%q) = %v, encoding/json accepts it", data, err)
		case err != nil:
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Unmarshal(%q) = %+v, encoding/json %+v", data, got, want)
		}
		if err := check(data, reflect.TypeFor[*request]()); err != nil {
			t.Fatalf("Unmarshal accepted %q, the scan refuses it: %v", data, err)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) == nil {
			names := typeFor(reflect.TypeFor[request]()).fields
			for k := range top {
				if _, ok := names[k]; !ok {
					t.Fatalf("Unmarshal(%q) accepted key %q, which is no field's exact name", data, k)
				}
			}
		}
	})
}
