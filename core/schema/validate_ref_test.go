package schema

// The implementation of Validate before it was optimised, kept as the
// reference the fuzz target FuzzValidateEquivalent compares against.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

func refValidate(m *Model, payload json.RawMessage) (Record, error) {
	obj, err := refDecodeObject(payload)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if m.Field(k) == nil {
			return nil, &ValidationError{Msg: fmt.Sprintf("unknown field %q", k)}
		}
	}
	rec := make(Record, len(m.Fields))
	for _, f := range m.Fields {
		raw, ok := obj[f.Name]
		switch {
		case !ok:
			return nil, &ValidationError{Msg: fmt.Sprintf("missing required field %q", f.Name)}
		case refIsNull(raw):
			if !f.Optional {
				return nil, &ValidationError{Msg: fmt.Sprintf("field %q must not be null", f.Name)}
			}
			rec[f.Name] = nil
		default:
			v, err := refValue(f, raw)
			if err != nil {
				return nil, &ValidationError{Field: f.Name, Msg: err.Error()}
			}
			rec[f.Name] = v
		}
	}
	return rec, nil
}

func refDecodeObject(payload json.RawMessage) (map[string]json.RawMessage, error) {
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

func refIsNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }
func refValue(f *Field, raw json.RawMessage) (any, error) {
	if f.List {
		return refListValue(f, raw)
	}
	return refScalarValue(f, raw)
}

func refListValue(f *Field, raw json.RawMessage) (any, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || elems == nil {
		return nil, fmt.Errorf("must be an array of %s", f.Type)
	}
	out := make([]any, len(elems))
	for i, el := range elems {
		if refIsNull(el) {
			return nil, fmt.Errorf("element %d must not be null", i)
		}
		v, err := refScalarValue(f, el)
		if err != nil {
			return nil, fmt.Errorf("element %d %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

func refScalarValue(f *Field, raw json.RawMessage) (any, error) {
	if f.Type == JSON {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, errors.New("must be a JSON value")
		}
		return json.RawMessage(buf.Bytes()), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New("must be a JSON value")
	}
	s, isString := v.(string)
	n, isNumber := v.(json.Number)
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
