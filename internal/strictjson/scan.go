package strictjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit, so that both refuse the same
// documents and a body of a million "[" cannot exhaust the stack.
const maxDepth = 10000

// smallObject is how many keys an object may have before its keys are
// compared through a map rather than each with each.
const smallObject = 16

// scanner is one pass over a JSON document: it checks the syntax as
// encoding/json does and the keys as the package says. It stops at the
// first syntax error; a refused key is remembered and the scan goes on, so
// that malformed JSON is reported as malformed wherever the keys are.
type scanner struct {
	data  []byte
	pos   int
	depth int
	keys  [][]byte   // the keys of the objects being scanned, innermost last
	path  []pathPart // where the scan is, for an Error's Path
	first *Error
	// Room for the keys and path of a usual document, so that checking
	// one allocates nothing but what it refuses.
	keysBuf [smallObject][]byte
	pathBuf [8]pathPart
}

type pathPart struct {
	key   []byte
	index int // -1 for a key
}

func check(data []byte, t reflect.Type) error {
	s := scanner{data: data}
	s.keys, s.path = s.keysBuf[:0], s.pathBuf[:0]
	s.space()
	if err := s.value(typeFor(t), true); err != nil {
		return err
	}
	s.space()
	if s.pos < len(s.data) {
		return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " after top-level value")
	}
	if s.first != nil {
		return s.first
	}
	return nil
}

func (s *scanner) syntax(msg string) *SyntaxError {
	return &SyntaxError{Offset: int64(s.pos), msg: msg}
}

func (s *scanner) eof() *SyntaxError { return s.syntax("unexpected end of JSON input") }

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value. t is the Go type it will be decoded into, nil if
// unknown or decoded by the type itself; keys says whether its keys are
// checked at all.
func (s *scanner) value(t *typeInfo, keys bool) error {
	if s.pos >= len(s.data) {
		return s.eof()
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(t, keys)
	case c == '[':
		return s.array(t, keys)
	case c == '"':
		start, escaped, err := s.str()
		if err == nil && keys && !s.text(start, escaped) {
			s.refuse(false, nil, "", ErrInvalidUTF8)
		}
		return err
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.syntax("invalid character " + quoteChar(c) + " looking for beginning of value")
	}
}

func (s *scanner) object(t *typeInfo, keys bool) error {
	s.pos++ // {
	if s.depth++; s.depth > maxDepth {
		return s.syntax("exceeded max depth")
	}
	base := len(s.keys)
	var folded map[string]string // the object's keys by folded name, once it is large
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if s.data[s.pos] != '"' {
			return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " looking for beginning of object key string")
		}
		start, escaped, err := s.str()
		if err != nil {
			return err
		}
		var child *typeInfo
		childKeys := keys
		var key []byte
		if keys {
			key = s.key(start, escaped)
			if !s.text(start, escaped) {
				s.refuse(true, key, "", ErrInvalidUTF8)
			}
			folded = s.addKey(base, key, folded)
			child, childKeys = s.field(t, key)
		}
		s.space()
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if s.data[s.pos] != ':' {
			return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " after object key")
		}
		s.pos++
		s.space()
		s.path = append(s.path, pathPart{key: key, index: -1})
		if err := s.value(child, childKeys); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
		if s.pos >= len(s.data) {
			return s.eof()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.space()
			continue
		case '}':
			s.pos++
			s.depth--
			s.keys = s.keys[:base]
			return nil
		}
		return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " after object key:value pair")
	}
}

// addKey checks key against the other keys of the object whose keys start
// at s.keys[base], and records it.
func (s *scanner) addKey(base int, key []byte, folded map[string]string) map[string]string {
	if folded == nil && len(s.keys)-base < smallObject {
		for _, k := range s.keys[base:] {
			if bytes.Equal(k, key) {
				s.refuse(true, key, string(key), ErrDuplicateKey)
				break
			}
			if bytes.EqualFold(k, key) {
				s.refuse(true, key, string(k), ErrCaseVariant)
				break
			}
		}
		s.keys = append(s.keys, key)
		return nil
	}
	if folded == nil {
		folded = make(map[string]string, 2*smallObject)
		for _, k := range s.keys[base:] {
			if f := foldName(string(k)); folded[f] == "" {
				folded[f] = string(k)
			}
		}
	}
	f := foldName(string(key))
	switch k, ok := folded[f]; {
	case !ok:
		folded[f] = string(key)
	case k == string(key):
		s.refuse(true, key, k, ErrDuplicateKey)
	default:
		s.refuse(true, key, k, ErrCaseVariant)
	}
	// Large objects are checked through the map alone; s.keys keeps only
	// their first keys, which is all the small path needs.
	return folded
}

// field is what the value of key is decoded into when its object is
// decoded into t, and whether its keys are checked.
func (s *scanner) field(t *typeInfo, key []byte) (*typeInfo, bool) {
	if t == nil {
		return nil, true
	}
	if t.kind != kindStruct {
		return t.elem(), true
	}
	if f, ok := t.fields[string(key)]; ok {
		return typeFor(f.typ), !f.raw
	}
	if name, ok := t.folded[foldName(string(key))]; ok {
		s.refuse(true, key, name, ErrFieldCase)
	}
	return nil, true // unknown: the decoder refuses it
}

// refuse records a refusal at the current path, and at key under it if
// isKey, unless one was recorded before.
func (s *scanner) refuse(isKey bool, key []byte, other string, why error) {
	if s.first != nil {
		return
	}
	var elems []string
	for _, p := range s.path {
		if p.index >= 0 {
			elems = append(elems, strconv.Itoa(p.index))
		} else {
			elems = append(elems, pathElem(string(p.key)))
		}
	}
	k := ""
	if isKey {
		k = string(key)
		elems = append(elems, pathElem(k))
	}
	s.first = &Error{Path: strings.Join(elems, "."), Key: k, Other: other, Err: why}
}

func (s *scanner) array(t *typeInfo, keys bool) error {
	s.pos++ // [
	if s.depth++; s.depth > maxDepth {
		return s.syntax("exceeded max depth")
	}
	var elem *typeInfo
	if t != nil && t.kind == kindList {
		elem = t.elem()
	}
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for i := 0; ; i++ {
		s.path = append(s.path, pathPart{index: i})
		if err := s.value(elem, keys); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
		if s.pos >= len(s.data) {
			return s.eof()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.space()
			continue
		case ']':
			s.pos++
			s.depth--
			return nil
		}
		return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " after array element")
	}
}

// str scans a string starting at its quote. It returns where its contents
// start (they end before the closing quote at s.pos-1) and whether it has
// escapes.
func (s *scanner) str() (start int, escaped bool, err error) {
	s.pos++ // "
	start = s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return start, escaped, nil
		case c == '\\':
			escaped = true
			s.pos++
			if s.pos >= len(s.data) {
				return 0, false, s.eof()
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				s.pos++
				for range 4 {
					if s.pos >= len(s.data) {
						return 0, false, s.eof()
					}
					if !isHex(s.data[s.pos]) {
						return 0, false, s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " in \\u hexadecimal character escape")
					}
					s.pos++
				}
			default:
				return 0, false, s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " in string escape code")
			}
		case c < 0x20:
			return 0, false, s.syntax("invalid character " + quoteChar(c) + " in string literal")
		default:
			s.pos++
		}
	}
	return 0, false, s.eof()
}

// key is the decoded key whose contents start at start, as encoding/json
// decodes it: escapes resolved, invalid UTF-8 and lone surrogates replaced
// by U+FFFD. Most keys are their own bytes in data, and cost nothing.
func (s *scanner) key(start int, escaped bool) []byte {
	raw := s.data[start : s.pos-1]
	if !escaped && utf8.Valid(raw) {
		return raw
	}
	var k string
	if err := json.Unmarshal(s.data[start-1:s.pos], &k); err != nil {
		return raw // unreachable: str checked the string
	}
	return []byte(k)
}

// text reports whether the string whose contents start at start is UTF-8
// text: no invalid byte, and no \u escape of a surrogate that is not
// followed, or preceded, by its other half.
func (s *scanner) text(start int, escaped bool) bool {
	raw := s.data[start : s.pos-1]
	if !utf8.Valid(raw) {
		return false
	}
	if !escaped {
		return true
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' {
			continue
		}
		r := hex4(raw[i+1 : i+5])
		i += 4
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return false
		case 0xD800 <= r && r <= 0xDBFF:
			if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return false
			}
			if lo := hex4(raw[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hex4 is the value of four hex digits, which str has checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c <= '9':
			r = r<<4 | rune(c-'0')
		case c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			r = r<<4 | rune(c-'a'+10)
		}
	}
	return r
}

func (s *scanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos >= len(s.data):
		return s.eof()
	case s.data[s.pos] == '0':
		s.pos++
	case '1' <= s.data[s.pos] && s.data[s.pos] <= '9':
		s.digits()
	default:
		return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " in numeric literal")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if !isDigit(s.data[s.pos]) {
			return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " after decimal point in numeric literal")
		}
		s.digits()
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if !isDigit(s.data[s.pos]) {
			return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " in exponent of numeric literal")
		}
		s.digits()
	}
	return nil
}

func (s *scanner) digits() {
	for s.pos < len(s.data) && isDigit(s.data[s.pos]) {
		s.pos++
	}
}

func (s *scanner) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if s.data[s.pos] != lit[i] {
			return s.syntax("invalid character " + quoteChar(s.data[s.pos]) + " in literal " + lit)
		}
		s.pos++
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// quoteChar formats c as encoding/json does in its syntax errors.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(c))
	return "'" + s[1:len(s)-1] + "'"
}
