package strictjson

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode"
)

// typeInfo is what the scan needs to know of a Go type a value is decoded
// into: a struct's field names, or the element type of a map, slice or
// array. Types that decode themselves (json.RawMessage, time.Time,
// ledger.Amount, pricing.Price) are nil: their keys are still checked for
// duplicates, their field names are theirs.
type typeInfo struct {
	kind    kind
	elemTyp reflect.Type
	fields  map[string]field  // by exact JSON name
	folded  map[string]string // foldName(name) → name
}

type kind int

const (
	kindStruct kind = iota
	kindMap
	kindList // slice or array
)

type field struct {
	typ reflect.Type
	raw bool // tagged strictjson:"-": not looked into
}

func (t *typeInfo) elem() *typeInfo { return typeFor(t.elemTyp) }

var types sync.Map // reflect.Type → *typeInfo

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// typeFor describes t, or returns nil if the scan has nothing to learn
// from it. Field types are described when the scan reaches them, so a
// type that refers to itself is fine. Answers, nil ones too, are cached:
// asking whether a type decodes itself is most of the cost.
func typeFor(t reflect.Type) *typeInfo {
	if t == nil {
		return nil
	}
	if ti, ok := types.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := describe(t)
	v, _ := types.LoadOrStore(t, ti)
	return v.(*typeInfo)
}

func describe(t reflect.Type) *typeInfo {
	for t.Kind() == reflect.Pointer {
		if decodesItself(t) {
			return nil
		}
		t = t.Elem()
	}
	if decodesItself(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		ti := &typeInfo{kind: kindStruct, fields: structFields(t), folded: map[string]string{}}
		for name := range ti.fields {
			if f := foldName(name); ti.folded[f] == "" || name < ti.folded[f] {
				ti.folded[f] = name
			}
		}
		return ti
	case reflect.Map:
		return &typeInfo{kind: kindMap, elemTyp: t.Elem()}
	case reflect.Slice, reflect.Array:
		return &typeInfo{kind: kindList, elemTyp: t.Elem()}
	}
	return nil
}

func decodesItself(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// structFields are the JSON names of t's fields as encoding/json finds
// them: tag names, else Go names; fields of embedded structs promoted, a
// shallower field winning over a deeper one.
func structFields(t reflect.Type) map[string]field {
	out := map[string]field{}
	level := []reflect.Type{t}
	seen := map[reflect.Type]bool{}
	for len(level) > 0 {
		var next []reflect.Type
		found := map[string]field{}
		for _, st := range level {
			if seen[st] {
				continue
			}
			seen[st] = true
			for i := range st.NumField() {
				sf := st.Field(i)
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if !validTag(name) {
					name = ""
				}
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if name == "" && ft.Kind() == reflect.Struct {
						next = append(next, ft)
						continue
					}
				}
				if !sf.IsExported() {
					continue
				}
				if name == "" {
					name = sf.Name
				}
				if _, shallower := out[name]; !shallower {
					found[name] = field{typ: sf.Type, raw: sf.Tag.Get("strictjson") == "-"}
				}
			}
		}
		for name, f := range found {
			out[name] = f
		}
		level = next
	}
	return out
}

// validTag is encoding/json's rule for a usable name in a tag.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
