// Package validatortest runs a validator.Validator in-process, the way the
// syncplane host would call the plugin, so a tenant tests its validation
// with `go test` and no plugin binary.
//
// Check (and Run, its testing.TB form) does what the wire would do to the
// batch: it round-trips the events' Key and Payload through JSON (so numbers
// arrive as float64, as they would in the plugin), offers the validator a
// host reader over in-memory committed records restricted to the scopes of
// the batch's events, recovers a panic, and treats an error, a nil response
// or a wrong number of verdicts as the failure the host would see.
//
//	func TestBoardNames(t *testing.T) {
//		res := validatortest.Run(t, validator.Func(check), validatortest.Request{
//			Subject: "alice",
//			Events: []validator.Event{
//				{Model: "Board", Operation: validator.Create, Scope: "user:alice", Payload: map[string]any{"name": ""}},
//				{Model: "Board", Operation: validator.Create, Scope: "user:alice", Payload: map[string]any{"name": "Home"}},
//			},
//			Records: validatortest.Records{
//				"user:alice": {"Board": {{"id": "b1", "name": "Home"}}},
//				"user:bob":   {"Board": {{"id": "b2", "name": "Work"}}}, // never visible to this batch
//			},
//		})
//		want := map[int]string{0: "board name must not be empty", 1: `a board named "Home" exists`}
//		if diff := cmp.Diff(want, res.Rejections()); diff != "" {
//			t.Errorf("rejections (-want +got):\n%s", diff)
//		}
//	}
package validatortest
