// Package jsonscan walks JSON text that is already known to be valid
// (checked by json.Valid, or produced by encoding/json) without decoding it:
// core/schema validates payloads and core/push reads request bodies with it
// in one pass, instead of decoding into maps and then decoding every value
// again. Every function assumes valid input; on invalid input it may panic.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// ObjectBytes returns the payload without surrounding whitespace if it is
// one valid JSON object, which is exactly when decoding it into a map with
// a json.Decoder succeeds and leaves nothing but whitespace behind.
func ObjectBytes(payload []byte) ([]byte, bool) {
	if !json.Valid(payload) {
		return nil, false
	}
	return ValidObjectBytes(payload)
}

// ValidObjectBytes is ObjectBytes for a payload already known to be one
// valid JSON value (a member of a document json.Valid accepted).
func ValidObjectBytes(payload []byte) ([]byte, bool) {
	b := bytes.TrimLeft(payload, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	return bytes.TrimRight(b, " \t\r\n"), true
}

func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// SkipValue returns the end of the valid JSON value starting at b[i].
func SkipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = SkipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// SkipString returns the end of the JSON string starting at b[i].
func SkipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// ForEachMember calls fn with each member's quoted key and value (without
// surrounding whitespace) of a valid JSON object, in order.
func ForEachMember(obj []byte, fn func(key, val []byte)) {
	i := SkipSpace(obj, 1)
	if obj[i] == '}' {
		return
	}
	for {
		k := SkipString(obj, i)
		key := obj[i:k]
		i = SkipSpace(obj, k)
		i = SkipSpace(obj, i+1) // ':'
		e := SkipValue(obj, i)
		fn(key, obj[i:e])
		i = SkipSpace(obj, e)
		if obj[i] == '}' {
			return
		}
		i = SkipSpace(obj, i+1) // ','
	}
}

// ForEachElement calls fn with each element (without surrounding
// whitespace) of a valid JSON array, in order.
func ForEachElement(arr []byte, fn func(el []byte)) {
	i := SkipSpace(arr, 1)
	if arr[i] == ']' {
		return
	}
	for {
		e := SkipValue(arr, i)
		fn(arr[i:e])
		i = SkipSpace(arr, e)
		if arr[i] == ']' {
			return
		}
		i = SkipSpace(arr, i+1) // ','
	}
}

// IsPlainString reports whether the contents of a valid JSON string
// decode to themselves: no escapes and valid UTF-8, which encoding/json
// would otherwise replace with U+FFFD.
func IsPlainString(s []byte) bool {
	ascii := true
	for _, c := range s {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false // an escape may still follow
		}
	}
	return ascii || utf8.Valid(s)
}

// Unquote decodes a valid JSON string exactly as encoding/json does.
func Unquote(q []byte) string {
	if s := q[1 : len(q)-1]; IsPlainString(s) {
		return string(s)
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		panic("schema: Unquote of invalid JSON string: " + err.Error()) // unreachable
	}
	return s
}

// SmallInt parses a JSON number that is a plain integer of at most 15
// digits (well inside the int64 range and exactly representable as a
// float64), the common case; other numbers take the general path.
func SmallInt(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
