package strictjson

import (
	"unicode"
	"unicode/utf8"
)

// foldName is encoding/json's: foldName(x) == foldName(y) exactly when
// strings.EqualFold(x, y), so keys collide here where encoding/json would
// match them to one field.
func foldName(s string) string {
	var arr [32]byte // most keys are short
	out := arr[:0]
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return string(out)
}

// foldRune is the smallest rune of r's fold set.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
