package changelog

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Operation is what an entry did to its record.
type Operation string

// The operations of the prisma-idb protocol.
const (
	Create Operation = "create"
	Update Operation = "update"
	Delete Operation = "delete"
)

// Entry is one changelog row.
type Entry struct {
	ID            string          // UUIDv7 text, increasing per scope in commit order
	Model         string          // model name
	KeyPath       json.RawMessage // JSON array of the primary key values
	Operation     Operation       //
	ScopeKey      string          // the scope the record belonged to when it was written
	OutboxEventID string          // the client's event id; unique per tenant
	CreatedAt     time.Time       // server time of the write
}

// Next returns a changelog id that is greater, as a string, than last (which
// may be empty) and is a valid UUIDv7 for the time now. When the clock is
// behind last (another server process, a clock step), it increments last's
// random bits instead, so ids keep increasing.
func Next(last string, now time.Time) (string, error) {
	fresh := newV7(now)
	if last == "" {
		return format(fresh), nil
	}
	prev, err := parse(last)
	if err != nil {
		return "", fmt.Errorf("changelog head %q: %w", last, err)
	}
	if format(fresh) > last {
		return format(fresh), nil
	}
	return format(successor(prev)), nil
}

// newV7 builds a UUIDv7: 48 bits of Unix milliseconds, version 7, 12 random
// bits, the RFC 4122 variant and 62 random bits.
func newV7(now time.Time) [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[6:])
	ms := uint64(now.UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u
}

// successor returns the next UUIDv7 after u in string order: it counts up
// through the 74 non-fixed bits after the timestamp, carrying into the
// timestamp when they overflow, and keeps the version and variant bits.
func successor(u [16]byte) [16]byte {
	// rand_b: 62 bits in bytes 8..15 (top two bits of byte 8 are the variant).
	for i := 15; i >= 9; i-- {
		u[i]++
		if u[i] != 0 {
			return u
		}
	}
	if u[8]&0x3f != 0x3f {
		u[8]++
		return u
	}
	u[8] = 0x80
	// rand_a: 12 bits in byte 6 (low nibble) and byte 7.
	u[7]++
	if u[7] != 0 {
		return u
	}
	if u[6]&0x0f != 0x0f {
		u[6]++
		return u
	}
	u[6] = 0x70
	for i := 5; i >= 0; i-- {
		u[i]++
		if u[i] != 0 {
			break
		}
	}
	return u
}

func format(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

func parse(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("not a UUID")
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("not a UUID: %w", err)
	}
	return u, nil
}

// Valid reports whether s has the form of a changelog id (a UUID in
// lowercase canonical text). Pull uses it to reject malformed cursors.
func Valid(s string) bool {
	if _, err := parse(s); err != nil {
		return false
	}
	for _, c := range s {
		if c >= 'A' && c <= 'F' {
			return false
		}
	}
	return true
}

// Time is the time a changelog id was allocated at, to the millisecond
// (its UUIDv7 timestamp); false when s is not an id.
func Time(s string) (time.Time, bool) {
	u, err := parse(s)
	if err != nil {
		return time.Time{}, false
	}
	var ms int64
	for i := 0; i < 6; i++ {
		ms = ms<<8 | int64(u[i])
	}
	return time.UnixMilli(ms).UTC(), true
}
