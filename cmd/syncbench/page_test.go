package main

import "testing"

func TestScanPage(t *testing.T) {
	c := "c1.x"
	for name, tc := range map[string]struct {
		page   string
		cursor *string
		empty  bool
		bad    bool
	}{
		"cursor first":     {page: `{"cursor":"c1.x","logsWithRecords":[{"id":"a","record":{"x":[1,{"y":"]"}]}}]}`, cursor: &c},
		"cursor last":      {page: `{"logsWithRecords":[{"id":"a","record":null},{"id":"b"}],"extra":{"a":[]},"cursor":"c1.x"}`, cursor: &c},
		"empty":            {page: `{"cursor":"c1.x","logsWithRecords":[]}`, cursor: &c, empty: true},
		"empty, null":      {page: `{"cursor":null,"logsWithRecords":[]}`, empty: true},
		"no cursor":        {page: `{"logsWithRecords":[{"id":"a"}]}`},
		"no entries field": {page: `{"cursor":"c1.x"}`, bad: true},
		"not an object":    {page: `[]`, bad: true},
		"entries not list": {page: `{"cursor":"c1.x","logsWithRecords":{}}`, bad: true},
	} {
		t.Run(name, func(t *testing.T) {
			cursor, empty, err := scanPage([]byte(tc.page))
			if (err != nil) != tc.bad {
				t.Fatalf("scanPage(%s) error %v, want error: %v", tc.page, err, tc.bad)
			}
			if tc.bad {
				return
			}
			if empty != tc.empty || (cursor == nil) != (tc.cursor == nil) || cursor != nil && *cursor != *tc.cursor {
				t.Errorf("scanPage(%s) = %v, %v; want %v, %v", tc.page, cursor, empty, tc.cursor, tc.empty)
			}
		})
	}
}
