package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncplane/syncplane/core/jsonscan"
)

// ValidationError is a payload that does not match a model. Field names the
// offending field when the problem is its value; it is empty for problems
// with the payload as a whole (not an object, unknown field, missing
// required field, null in a required field), whose Msg names the key.
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return fmt.Sprintf("field %q: %s", e.Field, e.Msg)
}

// TimeLayout is how DateTime values are written by MarshalRecord, in UTC
// (as JavaScript's Date.prototype.toISOString writes years 0001 to 9999,
// the only years Validate accepts).
const TimeLayout = "2006-01-02T15:04:05.000Z"

// maxEpochMillis bounds a JavaScript Date: times are at most 8.64e15 ms
// (100,000,000 days) away from the Unix epoch.
const maxEpochMillis = 8.64e15

// Validate checks a record payload against the model with prisma-idb's
// semantics and returns it as a Record of Go values (see Record).
//
// It matches the zod validators prisma-idb generates (a z.strictObject
// with every scalar and enum field): the payload must be a JSON object
// whose keys are exactly the model's column fields (relation fields are
// unknown keys). Every field must be present, including optional fields,
// fields with a @default and @updatedAt fields; defaults are the client's
// business, never filled in here. Only optional fields accept null (zod's
// .nullable()), which becomes nil. DateTime values are ISO-8601 strings or
// integer numbers of milliseconds since the Unix epoch (z.coerce.date),
// within the range of a JavaScript Date; they must fall in the years 0001
// to 9999 (in UTC), the years both stores keep, and are truncated to
// milliseconds, a JavaScript Date's precision.
//
// The error is a *ValidationError. Unknown keys are checked first (in
// sorted order), then the fields in declaration order.
func (m *Model) Validate(payload json.RawMessage) (Record, error) {
	// One pass over the payload: json.Valid checks it exactly as decoding
	// it would, then the members are walked in place and each value is
	// converted straight from its bytes (see scalarValue).
	obj, ok := jsonscan.ObjectBytes(payload)
	return m.validate(obj, ok)
}

// ValidateValid is Validate for a payload already known to be one valid
// JSON value, such as a member of a request body that json.Valid
// accepted: it is not checked again.
func (m *Model) ValidateValid(payload json.RawMessage) (Record, error) {
	obj, ok := jsonscan.ValidObjectBytes(payload)
	return m.validate(obj, ok)
}

func (m *Model) validate(obj []byte, ok bool) (Record, error) {
	if !ok {
		return nil, &ValidationError{Msg: "payload must be a JSON object"}
	}
	var stack [16]json.RawMessage
	vals := stack[:0]
	if len(m.Fields) > len(stack) {
		vals = make([]json.RawMessage, len(m.Fields))
	} else {
		vals = stack[:len(m.Fields)]
	}
	unknown := false
	jsonscan.ForEachMember(obj, func(key, val []byte) {
		if i := m.fieldIndex(key); i >= 0 {
			vals[i] = val // the last of duplicate keys wins, as in a map
		} else {
			unknown = true
		}
	})
	if unknown {
		return nil, m.unknownKeyError(obj)
	}
	rec := make(Record, len(m.Fields))
	for i, f := range m.Fields {
		raw := vals[i]
		switch {
		case raw == nil:
			return nil, &ValidationError{Msg: fmt.Sprintf("missing required field %q", f.Name)}
		case isNull(raw):
			if !f.Optional {
				return nil, &ValidationError{Msg: fmt.Sprintf("field %q must not be null", f.Name)}
			}
			rec[f.Name] = nil
		default:
			v, err := f.value(raw)
			if err != nil {
				return nil, &ValidationError{Field: f.Name, Msg: err.Error()}
			}
			rec[f.Name] = v
		}
	}
	return rec, nil
}

// fieldIndex returns the index in Fields of the field a JSON object key
// (the raw, quoted key) names, or -1.
func (m *Model) fieldIndex(key []byte) int {
	if plain := key[1 : len(key)-1]; jsonscan.IsPlainString(plain) {
		for i, f := range m.Fields {
			if f.Name == string(plain) {
				return i
			}
		}
		return -1
	}
	name := jsonscan.Unquote(key)
	for i, f := range m.Fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// unknownKeyError reports the first key of obj, in sorted order, that is
// not a field of the model.
func (m *Model) unknownKeyError(obj []byte) error {
	var keys []string
	jsonscan.ForEachMember(obj, func(key, _ []byte) { keys = append(keys, jsonscan.Unquote(key)) })
	slices.Sort(keys)
	for _, k := range keys {
		if m.Field(k) == nil {
			return &ValidationError{Msg: fmt.Sprintf("unknown field %q", k)}
		}
	}
	panic("schema: unknownKeyError: no unknown key") // unreachable
}

// ValidateKey checks a key path: a JSON array with one value per primary
// key field, in PrimaryKey order. It returns the values as Go values.
func (m *Model) ValidateKey(keyPath json.RawMessage) ([]any, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(keyPath, &elems); err != nil || elems == nil || len(elems) != len(m.PrimaryKey) {
		return nil, &ValidationError{Msg: fmt.Sprintf("key path must be a JSON array of %d value(s)", len(m.PrimaryKey))}
	}
	key := make([]any, len(elems))
	for i, raw := range elems {
		f := m.Field(m.PrimaryKey[i])
		if isNull(raw) {
			return nil, &ValidationError{Msg: fmt.Sprintf("field %q must not be null", f.Name)}
		}
		v, err := f.value(raw)
		if err != nil {
			return nil, &ValidationError{Field: f.Name, Msg: err.Error()}
		}
		key[i] = v
	}
	return key, nil
}

// Key returns the primary key values of a record, in PrimaryKey order.
func (m *Model) Key(r Record) []any {
	key := make([]any, len(m.PrimaryKey))
	for i, name := range m.PrimaryKey {
		key[i] = r[name]
	}
	return key
}

// MarshalRecord is the inverse of Validate: it writes a record as a JSON
// object with the fields in declaration order. DateTime values are written
// in TimeLayout, Bytes in standard base64, BigInt as a JSON number, Decimal
// as a JSON string, Json as is, nil (or a missing field) as null. Keys of r
// that are not fields of the model, and values of the wrong Go type, are
// errors.
func (m *Model) MarshalRecord(r Record) (json.RawMessage, error) {
	b, err := m.AppendRecord(nil, r)
	return b, err
}

// DecodeRecord is the inverse of MarshalRecord: it reads the JSON of a
// stored record, as MarshalRecord writes it (a pull page's records, say),
// into a Record with every field of the model, each value of the Go type
// Validate gives. Unlike Validate it reads what storage holds, not what a
// client sends: any field may be null, and a missing one is.
func (m *Model) DecodeRecord(doc json.RawMessage) (Record, error) {
	obj, ok := jsonscan.ObjectBytes(doc)
	if !ok {
		return nil, fmt.Errorf("schema: model %s: a record must be a JSON object", m.Name)
	}
	rec := make(Record, len(m.Fields))
	for _, f := range m.Fields {
		rec[f.Name] = nil
	}
	var err error
	jsonscan.ForEachMember(obj, func(key, val []byte) {
		if err != nil {
			return
		}
		i := m.fieldIndex(key)
		if i < 0 {
			err = fmt.Errorf("schema: model %s has no field %s", m.Name, key)
			return
		}
		f := m.Fields[i]
		if isNull(val) {
			rec[f.Name] = nil
			return
		}
		v, verr := f.storedValue(val)
		if verr != nil {
			err = fmt.Errorf("schema: %s.%s: %w", m.Name, f.Name, verr)
			return
		}
		rec[f.Name] = v
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// storedValue is value for DecodeRecord: a list may hold nulls (a Json
// list's null is the JSON null).
func (f *Field) storedValue(raw json.RawMessage) (any, error) {
	if !f.List || raw[0] != '[' {
		return f.value(raw)
	}
	var out []any
	var err error
	jsonscan.ForEachElement(raw, func(el []byte) {
		var v any
		switch {
		case err != nil:
			return
		case isNull(el) && f.Type == JSON:
			v = json.RawMessage("null")
		case isNull(el):
		default:
			v, err = f.scalarValue(el)
		}
		out = append(out, v)
	})
	if err != nil {
		return nil, fmt.Errorf("element %d %w", len(out)-1, err)
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

// AppendRecord is MarshalRecord appending to dst.
func (m *Model) AppendRecord(dst []byte, r Record) ([]byte, error) {
	for k := range r {
		if m.Field(k) == nil {
			return nil, fmt.Errorf("schema: model %s has no field %q", m.Name, k)
		}
	}
	dst = append(dst, '{')
	for i, f := range m.Fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonscan.AppendString(dst, f.Name)
		dst = append(dst, ':')
		var err error
		if dst, err = f.AppendValue(dst, r[f.Name]); err != nil {
			return nil, fmt.Errorf("schema: %s.%s: %w", m.Name, f.Name, err)
		}
	}
	return append(dst, '}'), nil
}

// AppendValue appends v, a value of f (a Record's, as Validate gives it),
// as MarshalRecord writes it.
func (f *Field) AppendValue(dst []byte, v any) ([]byte, error) {
	l, ok := v.([]any)
	switch {
	case ok && f.List:
		dst = append(dst, '[')
		for j, el := range l {
			if j > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = f.appendScalar(dst, el); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case f.List && v != nil:
		return nil, fmt.Errorf("want []any, got %T", v)
	}
	return f.appendScalar(dst, v)
}

// AppendFloat appends x as encoding/json writes a float64 (the shortest
// decimal that reads back as x, in exponent form below 1e-6 and from
// 1e21); NaN and infinities, which JSON cannot hold, are an error.
func AppendFloat(dst []byte, x float64) ([]byte, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil, fmt.Errorf("unsupported value: %v", x)
	}
	format := byte('f')
	if abs := math.Abs(x); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, x, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// AppendTime appends t as a JSON string in TimeLayout (UTC); a time outside
// the years 0001 to 9999 is an error.
func AppendTime(dst []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 1 || year > 9999 {
		return nil, fmt.Errorf("DateTime %v is outside the years 0001 to 9999", t)
	}
	// What t.AppendFormat(dst, TimeLayout) writes, digit by digit (a page
	// writes many; AppendFormat interprets the layout each time).
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	dst = append(dst, '"',
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
	return dst, nil
}

func (f *Field) appendScalar(dst []byte, v any) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	var ok bool
	switch f.Type {
	case Int, BigInt:
		var n int64
		switch x := v.(type) {
		case int64:
			n, ok = x, true
		case int:
			n, ok = int64(x), true
		case int32:
			n, ok = int64(x), true
		}
		dst = strconv.AppendInt(dst, n, 10)
	case Float:
		var x float64
		switch y := v.(type) {
		case float64:
			x, ok = y, true
		case float32:
			x, ok = float64(y), true
		}
		if ok {
			var err error
			if dst, err = AppendFloat(dst, x); err != nil {
				return nil, err
			}
		}
	case Boolean:
		var b bool
		b, ok = v.(bool)
		dst = strconv.AppendBool(dst, b)
	case DateTime:
		var t time.Time
		if t, ok = v.(time.Time); ok {
			var err error
			if dst, err = AppendTime(dst, t); err != nil {
				return nil, err
			}
		}
	case JSON:
		var raw json.RawMessage
		raw, ok = v.(json.RawMessage)
		if ok && !json.Valid(raw) {
			return nil, errors.New("invalid JSON value")
		}
		dst = append(dst, raw...)
	case Bytes:
		var b []byte
		b, ok = v.([]byte)
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		dst = append(dst, '"')
	default: // String, Decimal, enums
		var s string
		s, ok = v.(string)
		dst = jsonscan.AppendString(dst, s)
	}
	if !ok {
		return nil, fmt.Errorf("unexpected Go type %T for %s", v, f.Type)
	}
	return dst, nil
}

func decodeObject(payload json.RawMessage) (map[string]json.RawMessage, error) {
	notObject := &ValidationError{Msg: "payload must be a JSON object"}
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, notObject
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, notObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, notObject
	}
	return obj, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// value converts a non-null JSON value to the field's Go value.
func (f *Field) value(raw json.RawMessage) (any, error) {
	// raw is valid JSON (it comes from a decoder or from objectBytes).
	raw = bytes.TrimSpace(raw)
	if f.List {
		return f.listValue(raw)
	}
	return f.scalarValue(raw)
}
func (f *Field) listValue(raw json.RawMessage) (any, error) {
	if raw[0] != '[' {
		return nil, fmt.Errorf("must be an array of %s", f.Type)
	}
	n := 0
	jsonscan.ForEachElement(raw, func([]byte) { n++ })
	out := make([]any, n)
	var err error
	i := 0
	jsonscan.ForEachElement(raw, func(el []byte) {
		if err != nil {
			return
		}
		if isNull(el) {
			err = fmt.Errorf("element %d must not be null", i)
			return
		}
		v, verr := f.scalarValue(el)
		if verr != nil {
			err = fmt.Errorf("element %d %w", i, verr)
			return
		}
		out[i] = v
		i++
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var decimalRE = regexp.MustCompile(`^-?\d+(\.\d+)?$`)
var integerRE = regexp.MustCompile(`^-?\d+$`)

// scalarValue converts one non-null JSON value of the field's scalar or
// enum type.
func (f *Field) scalarValue(raw json.RawMessage) (any, error) {
	if f.Type == JSON {
		if hasNULEscape(raw) {
			return nil, errNUL
		}
		if bytes.IndexAny(raw, " \t\r\n") < 0 {
			return json.RawMessage(bytes.Clone(raw)), nil // already compact
		}
		var buf bytes.Buffer
		buf.Grow(len(raw))
		if err := json.Compact(&buf, raw); err != nil {
			return nil, errors.New("must be a JSON value")
		}
		return json.RawMessage(buf.Bytes()), nil
	}
	// raw is one valid, trimmed JSON value: what decoding it into an any
	// (with UseNumber) would give, without the decoder.
	var (
		s                  string
		n                  json.Number
		isString, isNumber bool
		v                  any // set for booleans only: the other kinds use s and n
	)
	switch raw[0] {
	case '"':
		s, isString = jsonscan.Unquote(raw), true
		if strings.IndexByte(s, 0) >= 0 {
			return nil, errNUL
		}
	case 't':
		v = true
	case 'f':
		v = false
	case 'n', '{', '[':
	default:
		isNumber = true
		if i, ok := jsonscan.SmallInt(raw); ok {
			switch f.Type {
			case Int, BigInt:
				return i, nil
			case DateTime:
				if i >= -maxEpochMillis && i <= maxEpochMillis {
					t := time.UnixMilli(i).UTC()
					if t.Year() < 1 || t.Year() > 9999 {
						return nil, errors.New("must be a date between the years 0001 and 9999")
					}
					return t, nil
				}
			}
		}
		n = json.Number(raw)
	}
	switch f.Type {
	case String:
		if isString {
			return s, nil
		}
		return nil, errors.New("must be a string")
	case Int:
		if i, ok := toInt64(n); isNumber && ok {
			return i, nil
		}
		return nil, errors.New("must be an integer")
	case BigInt:
		if i, ok := toInt64(n); isNumber && ok {
			return i, nil
		}
		if isString && integerRE.MatchString(s) {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
		}
		return nil, errors.New("must be an integer (a number or a string of digits) in the 64-bit range")
	case Float:
		if isNumber {
			if x, err := strconv.ParseFloat(string(n), 64); err == nil {
				return x, nil
			}
		}
		return nil, errors.New("must be a number")
	case Decimal:
		switch {
		case isNumber && decimalRE.MatchString(string(n)):
			return string(n), nil
		case isNumber:
			if x, err := strconv.ParseFloat(string(n), 64); err == nil {
				return strconv.FormatFloat(x, 'f', -1, 64), nil
			}
		case isString:
			if s = strings.TrimPrefix(s, "+"); decimalRE.MatchString(s) {
				return s, nil
			}
		}
		return nil, errors.New("must be a decimal number or a string holding one")
	case Boolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, errors.New("must be a boolean")
	case DateTime:
		t, ok := parseTime(s)
		if !isString || !ok {
			t, ok = epochMillis(n)
			ok = ok && isNumber
		}
		if !ok {
			return nil, errors.New("must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch")
		}
		if t.Year() < 1 || t.Year() > 9999 {
			// Both stores keep years 1 to 9999 (SQLite as ISO-8601 text).
			return nil, errors.New("must be a date between the years 0001 and 9999")
		}
		return t, nil
	case Bytes:
		if isString {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return b, nil
			}
		}
		return nil, errors.New("must be a base64 string")
	}
	if f.Enum != nil {
		if isString && slices.Contains(f.Enum.Values, s) {
			return s, nil
		}
		return nil, fmt.Errorf("must be one of %s", strings.Join(f.Enum.Values, ", "))
	}
	return nil, fmt.Errorf("unsupported type %s", f.Type)
}

// toInt64 accepts integral JSON numbers in the int64 range, including
// forms like 1.0 and 1e3.
// errNUL refuses the NUL character, which no database column of
// syncplane's stores: PostgreSQL's text and jsonb reject it, and SQLite
// would cut a string at it.
var errNUL = errors.New("must not contain the NUL character (U+0000)")

// hasNULEscape reports whether the JSON text raw holds a \u0000 escape (a
// NUL character; JSON text cannot hold a raw one). A backslash that is
// itself escaped does not start one.
func hasNULEscape(raw []byte) bool {
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		j += i
		backslashes := 0
		for k := j; k >= 0 && raw[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 1 {
			return true
		}
		i = j + 1
	}
}

func toInt64(n json.Number) (int64, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, true
	}
	x, err := strconv.ParseFloat(string(n), 64)
	if err != nil || x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
		return 0, false
	}
	return int64(x), true
}

// epochMillis accepts a JSON number of milliseconds since the Unix epoch,
// as z.coerce.date does: it must be integral and within the range of a
// JavaScript Date.
func epochMillis(n json.Number) (time.Time, bool) {
	x, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) || x != math.Trunc(x) || math.Abs(x) > maxEpochMillis {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(x)).UTC(), true
}

// parseTime accepts RFC 3339 date-times (optional fractional seconds, Z or
// an offset) and plain dates (midnight UTC), with a four-digit year. The
// caller checks the year range.
func parseTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Truncate(time.Millisecond), true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// ValidateFilter checks a filter object (field → value, as a validator
// plugin's Find sends it): every key must be a scalar field of the model,
// values follow the field's type rules, null only for optional fields.
// It returns the fields in sorted order with their Go values.
func (m *Model) ValidateFilter(filter json.RawMessage) ([]string, []any, error) {
	obj, err := decodeObject(filter)
	if err != nil {
		return nil, nil, err
	}
	fields := make([]string, 0, len(obj))
	for k := range obj {
		fields = append(fields, k)
	}
	slices.Sort(fields)
	vals := make([]any, len(fields))
	for i, name := range fields {
		f := m.Field(name)
		if f == nil {
			return nil, nil, &ValidationError{Msg: fmt.Sprintf("unknown field %q", name)}
		}
		if isNull(obj[name]) {
			return nil, nil, &ValidationError{Msg: fmt.Sprintf("field %q: filtering on null is not supported", name)}
		}
		if vals[i], err = f.value(obj[name]); err != nil {
			return nil, nil, &ValidationError{Field: name, Msg: err.Error()}
		}
	}
	return fields, vals, nil
}
