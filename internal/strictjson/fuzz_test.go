package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
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
// json.Valid refuses the input; a refused key exactly when a plain reading
// with json.Decoder finds two keys of one object equal under
// strings.EqualFold (which is how encoding/json matches them); a string
// refused as not text exactly when encoding/json decodes one to a U+FFFD
// the input did not spell.
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
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // 1E700 is valid JSON, and no float64
		collide, replaced, rerr := read(dec)
		if rerr != nil {
			t.Fatalf("the reference cannot read valid JSON %q: %v", data, rerr)
		}
		if bytes.Contains(data, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`)) {
			replaced = false // spelt, so the reference cannot tell; only the keys are compared
			if errors.Is(err, ErrInvalidUTF8) {
				return
			}
		}
		var e *Error
		refused := errors.As(err, &e)
		if refused != (collide || replaced) {
			t.Fatalf("Check(%q) = %v; the reference finds a collision %v, text replaced %v", data, err, collide, replaced)
		}
		switch {
		case !refused:
		case errors.Is(err, ErrInvalidUTF8) && !replaced, !errors.Is(err, ErrInvalidUTF8) && !collide:
			t.Fatalf("Check(%q) = %v; the reference finds a collision %v, text replaced %v", data, err, collide, replaced)
		case strings.ContainsRune(e.Path, 0), e.Key != "" && !strings.EqualFold(e.Key, e.Other) && e.Err != ErrInvalidUTF8:
			t.Fatalf("Check(%q): %#v", data, e)
		}
	})
}

// read reads one value token by token and reports whether an object in it
// has two keys equal under strings.EqualFold, and whether a string decoded
// to one holding U+FFFD.
func read(dec *json.Decoder) (collide, replaced bool, err error) {
	tok, err := dec.Token()
	if err != nil {
		return false, false, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		s, _ := tok.(string)
		return false, strings.ContainsRune(s, utf8.RuneError), nil
	}
	var keys []string
	for dec.More() {
		if d == '{' {
			tok, err := dec.Token()
			if err != nil {
				return false, false, err
			}
			k := tok.(string)
			collide = collide || slices.ContainsFunc(keys, func(p string) bool { return strings.EqualFold(p, k) })
			replaced = replaced || strings.ContainsRune(k, utf8.RuneError)
			keys = append(keys, k)
		}
		c, r, err := read(dec)
		if err != nil {
			return false, false, err
		}
		collide, replaced = collide || c, replaced || r
	}
	_, err = dec.Token() // the closing delimiter
	return collide, replaced, err
}

// FuzzUnmarshal holds Unmarshal to being encoding/json with refusals only:
// what it accepts encoding/json decodes to the same value, with every key
// of an object decoded into a struct spelt exactly as a field; what
// encoding/json refuses it refuses; and what only it refuses is a
// Error.
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
		var ke *Error
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
