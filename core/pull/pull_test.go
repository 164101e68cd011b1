package pull_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/pull"
)

const cursor = "0193a5f2-7c1e-7d4b-8a2f-0123456789ab"

func ptr[T any](v T) *T { return &v }

func TestDecodeRequestValid(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body string
		want pull.Request
	}{
		"empty body is the first pull": {body: ``},
		"whitespace only":              {body: " \n\t\r "},
		"empty object":                 {body: `{}`},
		"null":                         {body: `null`},
		"explicit nulls":               {body: `{"lastChangelogId":null,"limit":null,"scopeKey":null}`},
		"every field": {
			body: `{"lastChangelogId":"` + cursor + `","limit":50,"scopeKey":"team-42"}`,
			want: pull.Request{LastChangelogID: ptr(cursor), Limit: ptr(50), ScopeKey: ptr("team-42")},
		},
		"cursor only": {body: `{"lastChangelogId":"` + cursor + `"}`, want: pull.Request{LastChangelogID: ptr(cursor)}},
		"limit 1":     {body: `{"limit":1}`, want: pull.Request{Limit: ptr(1)}},
		// A limit above the maximum is capped by Pull, not rejected here.
		"huge limit":             {body: `{"limit":1000000000}`, want: pull.Request{Limit: ptr(1000000000)}},
		"surrounding whitespace": {body: "\n {\"limit\": 5}\n\t", want: pull.Request{Limit: ptr(5)}},
		"duplicate key, last wins": {
			body: `{"limit":0,"limit":7}`,
			want: pull.Request{Limit: ptr(7)},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			got, err := pull.DecodeRequest([]byte(tc.body))
			if err != nil {
				t.Fatalf("DecodeRequest(%q) failed: %v", tc.body, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecodeRequest(%q) (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	t.Parallel()
	const decodeErr = "invalid pull body: " // followed by the decoder's own words
	tests := map[string]struct {
		body string
		want string // the whole message, or a prefix when it ends with ": "
	}{
		"truncated":                      {body: `{"limit":`, want: decodeErr},
		"not JSON":                       {body: `limit=5`, want: decodeErr},
		"an array":                       {body: `[]`, want: decodeErr},
		"a number":                       {body: `5`, want: decodeErr},
		"unknown field":                  {body: `{"cursor":"x","limit":5}`, want: `invalid pull body: unknown field "cursor"`},
		"unknown fields, first in order": {body: `{"zz":1,"cursor":"x"}`, want: `invalid pull body: unknown field "cursor"`},
		"field of another case":          {body: `{"Limit":5}`, want: `invalid pull body: unknown field "Limit"`},
		"upper case field":               {body: `{"LASTCHANGELOGID":"` + cursor + `"}`, want: `invalid pull body: unknown field "LASTCHANGELOGID"`},
		"snake case field":               {body: `{"last_changelog_id":"` + cursor + `"}`, want: `invalid pull body: unknown field "last_changelog_id"`},
		"limit a string":                 {body: `{"limit":"10"}`, want: decodeErr},
		"limit a fraction":               {body: `{"limit":1.5}`, want: decodeErr},
		"limit too large":                {body: `{"limit":99999999999999999999}`, want: decodeErr},
		"limit with an exponent":         {body: `{"limit":1e2}`, want: decodeErr},
		"cursor a number":                {body: `{"lastChangelogId":1}`, want: decodeErr},
		"scopeKey an object":             {body: `{"scopeKey":{}}`, want: decodeErr},
		"trailing value":                 {body: `{} {}`, want: "invalid pull body: trailing data after the JSON value"},
		"trailing garbage":               {body: `{"limit":1} x`, want: "invalid pull body: trailing data after the JSON value"},
		"trailing bracket":               {body: `{}]`, want: "invalid pull body: trailing data after the JSON value"},
		"trailing brace":                 {body: `{"limit":1}}`, want: "invalid pull body: trailing data after the JSON value"},
		"limit zero":                     {body: `{"limit":0}`, want: "limit must be at least 1, got 0"},
		"limit negative":                 {body: `{"limit":-3}`, want: "limit must be at least 1, got -3"},
		"cursor empty":                   {body: `{"lastChangelogId":""}`, want: `lastChangelogId "" is not a changelog id or a cursor syncplane gave out`},
		"cursor not a uuid":              {body: `{"lastChangelogId":"abc"}`, want: `lastChangelogId "abc" is not a changelog id or a cursor syncplane gave out`},
		"cursor in upper case": {
			body: `{"lastChangelogId":"` + strings.ToUpper(cursor) + `"}`,
			want: `lastChangelogId "` + strings.ToUpper(cursor) + `" is not a changelog id or a cursor syncplane gave out`,
		},
		"cursor without dashes": {
			body: `{"lastChangelogId":"0193a5f27c1e7d4b8a2f0123456789ab"}`,
			want: `lastChangelogId "0193a5f27c1e7d4b8a2f0123456789ab" is not a changelog id or a cursor syncplane gave out`,
		},
		"scopeKey empty": {body: `{"scopeKey":""}`, want: "scopeKey must not be empty"},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			_, err := pull.DecodeRequest([]byte(tc.body))
			var re *pull.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("DecodeRequest(%q) error = %v (%T), want a *RequestError", tc.body, err, err)
			}
			if strings.HasSuffix(tc.want, ": ") {
				if !strings.HasPrefix(re.Msg, tc.want) || len(re.Msg) == len(tc.want) {
					t.Errorf("Msg = %q, want %q followed by the decoder's error", re.Msg, tc.want)
				}
			} else if re.Msg != tc.want {
				t.Errorf("Msg = %q, want %q", re.Msg, tc.want)
			}
			if re.Error() != re.Msg {
				t.Errorf("Error() = %q, want Msg %q", re.Error(), re.Msg)
			}
		})
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `null`, `[]`, `5`, `{"limit":5}`, `{"limit":0}`, `{"limit":-1}`, `{"limit":1.5}`,
		`{"lastChangelogId":"` + cursor + `","limit":50,"scopeKey":"team-42"}`,
		`{"lastChangelogId":"` + strings.ToUpper(cursor) + `"}`, `{"lastChangelogId":""}`, `{"scopeKey":""}`,
		`{"Limit":5}`, `{"cursor":"x"}`, `{}]`, `{} {}`, `{"limit":1e2}`, `{"scopeKey":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := pull.DecodeRequest(b)
		if err != nil {
			var re *pull.RequestError
			if !errors.As(err, &re) || re.Msg == "" {
				t.Fatalf("error %v (%T) is not a *RequestError with a message", err, err)
			}
			return
		}
		if len(bytes.TrimSpace(b)) > 0 && !json.Valid(b) {
			t.Fatalf("accepted a body that is not JSON: %q", b)
		}
		if req.LastChangelogID != nil && !changelog.Valid(*req.LastChangelogID) && !strings.HasPrefix(*req.LastChangelogID, "c1.") && !strings.HasPrefix(*req.LastChangelogID, "c2.") {
			t.Fatalf("accepted cursor %q", *req.LastChangelogID)
		}
		if req.Limit != nil && *req.Limit < 1 {
			t.Fatalf("accepted limit %d", *req.Limit)
		}
		if req.ScopeKey != nil && *req.ScopeKey == "" {
			t.Fatalf("accepted an empty scopeKey")
		}
		// What was accepted reads back the same once written by a client.
		out, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := pull.DecodeRequest(out)
		if err != nil {
			t.Fatalf("DecodeRequest(%s) of an accepted request failed: %v", out, err)
		}
		if diff := cmp.Diff(req, again); diff != "" {
			t.Fatalf("round trip of %q (-first +again):\n%s", b, diff)
		}
	})
}
