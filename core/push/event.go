package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncplane/syncplane/core/jsonscan"
	"github.com/syncplane/syncplane/core/schema"
)

// Event is one outbox event as the client sent it. Only the fields push
// acts on are kept; the client's bookkeeping fields are checked for type.
type Event struct {
	ID         string
	EntityType string
	Operation  string
	Payload    json.RawMessage

	validJSON bool // Payload is known to be valid JSON (DecodeBody checked the body)
}

// validate validates the payload against m, without checking its JSON
// again when DecodeBody already did.
func (e *Event) validate(m *schema.Model) (schema.Record, error) {
	if e.validJSON {
		return m.ValidateValid(e.Payload)
	}
	return m.Validate(e.Payload)
}

// BodyError is a request body that cannot be read as a push batch. Details
// name each problem with the event's index.
type BodyError struct {
	Msg     string
	Details []string
}

func (e *BodyError) Error() string { return e.Msg }

// envelope lists the OutboxEvent fields and how each is checked. entityKeyPath
// is accepted (and ignored) for clients of older prisma-idb versions.
var envelope = map[string]func(json.RawMessage) error{
	"id":              requireString,
	"entityType":      requireString,
	"operation":       requireString,
	"payload":         func(json.RawMessage) error { return nil },
	"createdAt":       dateOrNull(false),
	"tries":           requireNumber,
	"lastError":       stringOrNull,
	"synced":          requireBool,
	"syncedAt":        dateOrNull(true),
	"retryable":       requireBool,
	"lastAttemptedAt": dateOrNull(true),
	"entityKeyPath":   func(json.RawMessage) error { return nil },
}

// required are the fields an event must carry.
var required = []string{"id", "entityType", "operation", "payload"}

// BatchTooLargeError is a body with more than Max events. DecodeBody
// stops at event Max+1: the rest of the batch is neither decoded nor
// checked.
type BatchTooLargeError struct{ Max int }

func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("batch exceeds the limit of %d events", e.Max)
}

// MaxDetails is how many problems a *BodyError lists; a last line says
// how many more there were.
const MaxDetails = 20

// DecodeBody reads {"events": [OutboxEvent, ...]} of at most maxBatch
// events. It fails with a *BodyError when the body is not that shape:
// malformed JSON, unknown fields, an event without an id or with an id no
// database can store. A body that is that shape but holds more than
// maxBatch events fails with a *BatchTooLargeError, found while decoding:
// no more than maxBatch+1 events are read, whatever the body holds.
// Problems of one event's model, operation or payload are not body
// errors: push reports them per event.
//
// The body's syntax is checked as a whole first (json.Valid: one pass, no
// allocation), so malformed JSON is a *BodyError whatever its length.
func DecodeBody(body []byte, maxBatch int) ([]Event, error) {
	if maxBatch < 0 {
		maxBatch = 0
	}
	events, ok, err := scanBody(body, maxBatch)
	if err != nil {
		return nil, err
	}
	if !ok {
		if events, err = decodeBodyChecked(body, maxBatch); err != nil {
			return nil, err
		}
	}
	for i := range events { // every payload is a member of a valid document
		events[i].validJSON = true
	}
	return events, nil
}

// decodeBodyChecked is DecodeBody by way of encoding/json: it decides
// every body scanBody leaves undecided, and says precisely what is wrong.
func decodeBodyChecked(body []byte, maxBatch int) ([]Event, error) {
	// One decode of the top level only: each member's value is kept as
	// raw bytes (one copy of the body at most), so that the events can be
	// counted before any of them is decoded.
	var top map[string]json.RawMessage
	if err := strictUnmarshal(body, &top); err != nil {
		return nil, &BodyError{Msg: "malformed JSON: " + err.Error()}
	}
	if top == nil {
		return nil, &BodyError{Msg: `body must be an object {"events": [...]}`}
	}
	for _, k := range sortedKeys(top) { // sorted: the same body, the same error
		if k != "events" {
			return nil, &BodyError{Msg: fmt.Sprintf("unknown field %q in body", k)}
		}
	}
	rawEvents, ok := top["events"]
	if !ok {
		return nil, &BodyError{Msg: `missing field "events"`}
	}
	// rawEvents is one valid JSON value without surrounding whitespace.
	if rawEvents[0] != '[' {
		return nil, &BodyError{Msg: `"events" must be an array`}
	}
	objs := []map[string]json.RawMessage{}
	arr := rawEvents
	for i := jsonscan.SkipSpace(arr, 1); arr[i] != ']'; {
		if len(objs) == maxBatch {
			return nil, &BatchTooLargeError{Max: maxBatch}
		}
		e := jsonscan.SkipValue(arr, i)
		var obj map[string]json.RawMessage
		if arr[i] != '{' || json.Unmarshal(arr[i:e], &obj) != nil {
			obj = nil // not an object (null included): checkEvents says so
		}
		objs = append(objs, obj)
		if i = jsonscan.SkipSpace(arr, e); arr[i] == ',' {
			i = jsonscan.SkipSpace(arr, i+1)
		}
	}
	return checkEvents(objs)
}

// checkEvents checks each event's fields; the error lists every problem
// of every event.
func checkEvents(objs []map[string]json.RawMessage) ([]Event, error) {
	events := make([]Event, len(objs))
	var details []string
	more := 0 // problems past MaxDetails, counted and not listed
	report := func(i int, problem string) {
		if len(details) < MaxDetails {
			details = append(details, fmt.Sprintf("events[%d]: %s", i, problem))
		} else {
			more++
		}
	}
	for i, fields := range objs {
		if fields == nil {
			report(i, "must be an object")
			continue
		}
		ev, problems := checkEvent(fields)
		for _, p := range problems {
			report(i, p)
		}
		events[i] = ev
	}
	if more > 0 {
		details = append(details, fmt.Sprintf("… and %d more problems", more))
	}
	if len(details) > 0 {
		return nil, &BodyError{Msg: "invalid events", Details: details}
	}
	return events, nil
}

func checkEvent(fields map[string]json.RawMessage) (Event, []string) {
	var problems []string
	for _, k := range sortedKeys(fields) {
		check, known := envelope[k]
		if !known {
			problems = append(problems, fmt.Sprintf("unknown field %q", k))
			continue
		}
		if err := check(fields[k]); err != nil {
			problems = append(problems, fmt.Sprintf("field %q: %v", k, err))
		}
	}
	for _, k := range required {
		if _, ok := fields[k]; !ok {
			problems = append(problems, fmt.Sprintf("missing field %q", k))
		}
	}
	var ev Event
	_ = json.Unmarshal(fields["id"], &ev.ID)
	_ = json.Unmarshal(fields["entityType"], &ev.EntityType)
	_ = json.Unmarshal(fields["operation"], &ev.Operation)
	ev.Payload = fields["payload"]
	if _, ok := fields["id"]; ok && ev.ID == "" && len(problems) == 0 {
		problems = append(problems, `field "id": must not be empty`)
	}
	if strings.Contains(ev.ID, MovedSuffix) {
		problems = append(problems, fmt.Sprintf(`field "id": must not contain %q (syncplane marks the entries of moves with it)`, MovedSuffix))
	}
	if strings.IndexByte(ev.ID, 0) >= 0 {
		// No database stores it: the event could never be applied.
		problems = append(problems, `field "id": must not contain the NUL character (U+0000)`)
	}
	return ev, problems
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Not dec.More(): it reports false for a stray ']' or '}'.
	if rest := bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func requireString(raw json.RawMessage) error {
	var s string
	if json.Unmarshal(raw, &s) != nil || isNull(raw) {
		return fmt.Errorf("must be a string")
	}
	return nil
}

func stringOrNull(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	return requireString(raw)
}

func requireNumber(raw json.RawMessage) error {
	var n float64
	if json.Unmarshal(raw, &n) != nil || isNull(raw) {
		return fmt.Errorf("must be a number")
	}
	return nil
}

func requireBool(raw json.RawMessage) error {
	var b bool
	if json.Unmarshal(raw, &b) != nil || isNull(raw) {
		return fmt.Errorf("must be a boolean")
	}
	return nil
}

// dateOrNull accepts what the client's JSON.stringify(Date) sends: an
// ISO-8601 string (or an epoch number, as z.coerce.date does).
func dateOrNull(nullable bool) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		if isNull(raw) {
			if nullable {
				return nil
			}
			return fmt.Errorf("must not be null")
		}
		var n float64
		if json.Unmarshal(raw, &n) == nil {
			return nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return fmt.Errorf("must be a date string")
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("must be an ISO-8601 date, got %q", s)
		}
		return nil
	}
}

func sortedKeys(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }

// scanBody decodes a well-formed body in one walk over its bytes, checking
// each event's fields where they lie instead of decoding them twice. It
// reports false for every body it does not accept exactly as
// decodeBodyChecked would (anything unusual, not only problems: escaped or
// duplicate keys, a null event), and decodeBodyChecked then decides. It
// fails with a *BatchTooLargeError, as decodeBodyChecked would, at event
// maxBatch+1 of a body whose events it has accepted so far.
func scanBody(body []byte, maxBatch int) ([]Event, bool, error) {
	// json.Valid accepts exactly the bodies strictUnmarshal can read: one
	// value with only " \t\r\n" around it.
	if !json.Valid(body) {
		return nil, false, nil
	}
	b := body
	i := jsonscan.SkipSpace(b, 0)
	if b[i] != '{' {
		return nil, false, nil
	}
	i = jsonscan.SkipSpace(b, i+1)
	if b[i] != '"' {
		return nil, false, nil
	}
	k := jsonscan.SkipString(b, i)
	if string(b[i:k]) != `"events"` {
		return nil, false, nil
	}
	i = jsonscan.SkipSpace(b, k)
	i = jsonscan.SkipSpace(b, i+1) // ':'
	if b[i] != '[' {
		return nil, false, nil
	}
	end := jsonscan.SkipValue(b, i)
	if b[jsonscan.SkipSpace(b, end)] != '}' { // a second member
		return nil, false, nil
	}
	arr := b[i:end]

	events := make([]Event, 0, min(16, maxBatch))
	payloadLen := 0
	var names []string
	i = jsonscan.SkipSpace(arr, 1)
	if arr[i] != ']' {
		for {
			if len(events) == maxBatch {
				return nil, false, &BatchTooLargeError{Max: maxBatch}
			}
			e := jsonscan.SkipValue(arr, i)
			ev, ok := scanEvent(arr[i:e], &names)
			if !ok {
				return nil, false, nil
			}
			payloadLen += len(ev.Payload)
			events = append(events, ev)
			i = jsonscan.SkipSpace(arr, e)
			if arr[i] == ']' {
				break
			}
			i = jsonscan.SkipSpace(arr, i+1) // ','
		}
	}
	// Payloads must not alias body (the decoder copies them): copy them all
	// into one buffer, each capped so that appending to one cannot
	// overwrite the next.
	buf := make([]byte, 0, payloadLen)
	for j := range events {
		start := len(buf)
		buf = append(buf, events[j].Payload...)
		events[j].Payload = buf[start:len(buf):len(buf)]
	}
	return events, true, nil
}

// Envelope fields, as scanEvent numbers them.
const (
	fieldID = iota
	fieldEntityType
	fieldOperation
	fieldPayload
	fieldCreatedAt
	fieldTries
	fieldLastError
	fieldSynced
	fieldSyncedAt
	fieldRetryable
	fieldLastAttemptedAt
	fieldEntityKeyPath
)

// envelopeField numbers a quoted key as it stands in the body; an escaped
// spelling of a known key is -1 like an unknown one.
func envelopeField(key []byte) int {
	switch string(key) {
	case `"id"`:
		return fieldID
	case `"entityType"`:
		return fieldEntityType
	case `"operation"`:
		return fieldOperation
	case `"payload"`:
		return fieldPayload
	case `"createdAt"`:
		return fieldCreatedAt
	case `"tries"`:
		return fieldTries
	case `"lastError"`:
		return fieldLastError
	case `"synced"`:
		return fieldSynced
	case `"syncedAt"`:
		return fieldSyncedAt
	case `"retryable"`:
		return fieldRetryable
	case `"lastAttemptedAt"`:
		return fieldLastAttemptedAt
	case `"entityKeyPath"`:
		return fieldEntityKeyPath
	}
	return -1
}

// scanEvent reads one event (a valid JSON value) if it is an object that
// checkEvent would find no problem with. Payload is left aliasing obj.
func scanEvent(obj []byte, names *[]string) (Event, bool) {
	var ev Event
	if obj[0] != '{' {
		return ev, false
	}
	i := jsonscan.SkipSpace(obj, 1)
	if obj[i] == '}' {
		return ev, false
	}
	var seen uint16
	for {
		k := jsonscan.SkipString(obj, i)
		f := envelopeField(obj[i:k])
		if f < 0 || seen&(1<<f) != 0 {
			return ev, false
		}
		seen |= 1 << f
		i = jsonscan.SkipSpace(obj, k)
		i = jsonscan.SkipSpace(obj, i+1) // ':'
		e := jsonscan.SkipValue(obj, i)
		if !scanField(f, obj[i:e], &ev, names) {
			return ev, false
		}
		i = jsonscan.SkipSpace(obj, e)
		if obj[i] == '}' {
			break
		}
		i = jsonscan.SkipSpace(obj, i+1) // ','
	}
	const req = 1<<fieldID | 1<<fieldEntityType | 1<<fieldOperation | 1<<fieldPayload
	if seen&req != req || ev.ID == "" || strings.Contains(ev.ID, MovedSuffix) || strings.IndexByte(ev.ID, 0) >= 0 {
		return ev, false
	}
	return ev, true
}

// scanField is envelope's check of field f on its value v (valid JSON, no
// surrounding whitespace), and keeps the fields Event holds.
func scanField(f int, v []byte, ev *Event, names *[]string) bool {
	switch f {
	case fieldID:
		if v[0] != '"' {
			return false
		}
		ev.ID = jsonscan.Unquote(v)
	case fieldEntityType:
		if v[0] != '"' {
			return false
		}
		ev.EntityType = intern(v, names)
	case fieldOperation:
		if v[0] != '"' {
			return false
		}
		ev.Operation = intern(v, names)
	case fieldPayload:
		ev.Payload = v
	case fieldCreatedAt:
		return scanDate(v, false)
	case fieldSyncedAt, fieldLastAttemptedAt:
		return scanDate(v, true)
	case fieldTries:
		return scanNumber(v)
	case fieldLastError:
		return v[0] == '"' || string(v) == "null"
	case fieldSynced, fieldRetryable:
		return string(v) == "true" || string(v) == "false"
	}
	return true
}

// scanNumber reports whether v decodes into a float64, as requireNumber
// checks: a JSON number within range.
func scanNumber(v []byte) bool {
	if c := v[0]; c != '-' && (c < '0' || c > '9') {
		return false
	}
	if _, ok := jsonscan.SmallInt(v); ok {
		return true
	}
	_, err := strconv.ParseFloat(string(v), 64) // what encoding/json does
	return err == nil
}

// scanDate is dateOrNull's check.
func scanDate(v []byte, nullable bool) bool {
	switch v[0] {
	case 'n':
		return nullable
	case '"':
	default:
		return scanNumber(v) // not a number: not a string either
	}
	if s := v[1 : len(v)-1]; jsonscan.IsPlainString(s) {
		// UnmarshalText parses what time.Parse(time.RFC3339, ...) does,
		// without turning s into a string first.
		var t time.Time
		if t.UnmarshalText(s) == nil {
			return true
		}
	}
	_, err := time.Parse(time.RFC3339Nano, jsonscan.Unquote(v))
	return err == nil
}

// intern returns the string of the quoted v, sharing one string among the
// events of a body for the few model and operation names a batch has.
func intern(v []byte, names *[]string) string {
	s := v[1 : len(v)-1]
	if !jsonscan.IsPlainString(s) {
		return jsonscan.Unquote(v)
	}
	for _, n := range *names {
		if n == string(s) {
			return n
		}
	}
	n := string(s)
	if len(*names) < 16 {
		*names = append(*names, n)
	}
	return n
}
