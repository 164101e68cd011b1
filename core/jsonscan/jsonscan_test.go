package jsonscan_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/jsonscan"
)

func TestWalk(t *testing.T) {
	t.Parallel()
	obj, ok := jsonscan.ObjectBytes([]byte(` {"a": [1, {"b": "}"}], "c\"d" : "x\u00e9", "n": -12} `))
	if !ok {
		t.Fatal("ObjectBytes refused a valid object")
	}
	var got []string
	jsonscan.ForEachMember(obj, func(key, val []byte) { got = append(got, jsonscan.Unquote(key)+"="+string(val)) })
	want := []string{`a=[1, {"b": "}"}]`, `c"d="x\u00e9"`, `n=-12`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	var els []string
	jsonscan.ForEachElement([]byte(`[ true ,null,"a" ]`), func(el []byte) { els = append(els, string(el)) })
	if diff := cmp.Diff([]string{"true", "null", `"a"`}, els); diff != "" {
		t.Errorf("elements (-want +got):\n%s", diff)
	}
	for _, bad := range []string{`[]`, `{"a":`, `  `, `{"a":1} x`} {
		if _, ok := jsonscan.ObjectBytes([]byte(bad)); ok {
			t.Errorf("ObjectBytes(%q) accepted", bad)
		}
	}
	for q, want := range map[string]string{`"x\u00e9"`: "xé", `"é \"x\" \\"`: `é "x" \`, `"é"`: "é", "\"\xff\"": "\ufffd"} {
		if s := jsonscan.Unquote([]byte(q)); s != want {
			t.Errorf("Unquote(%s) = %q, want %q", q, s, want)
		}
	}
	for in, want := range map[string]int64{"0": 0, "-42": -42, "123456789012345": 123456789012345} {
		if n, ok := jsonscan.SmallInt([]byte(in)); !ok || n != want {
			t.Errorf("SmallInt(%s) = %d, %v", in, n, ok)
		}
	}
	for _, in := range []string{"1.5", "1e3", "1234567890123456", "-"} {
		if _, ok := jsonscan.SmallInt([]byte(in)); ok {
			t.Errorf("SmallInt(%s) accepted", in)
		}
	}
}
