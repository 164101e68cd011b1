import assert from "node:assert/strict";
import { test } from "node:test";

import { BadRequestError, check, codePoints, MAX_TITLE_LENGTH, type Event } from "./rules";

function ev(model: string, operation: string, payload: unknown): Event {
  return {
    id: "e1",
    model,
    operation,
    key_json: '["k"]',
    payload_json: typeof payload === "string" ? payload : JSON.stringify(payload),
    scope: "u1",
  };
}

const cases: { name: string; event: Event; want: { allow: boolean; message: string } }[] = [
  { name: "todo title=200", event: ev("Todo", "create", { title: "a".repeat(200) }), want: { allow: true, message: "" } },
  {
    name: "todo title=201",
    event: ev("Todo", "create", { title: "a".repeat(201) }),
    want: { allow: false, message: "todo title must be at most 200 characters (it has 201)" },
  },
  {
    name: "todo update title=201",
    event: ev("Todo", "update", { title: "a".repeat(201) }),
    want: { allow: false, message: "todo title must be at most 200 characters (it has 201)" },
  },
  // 200 emoji are 400 UTF-16 units but 200 characters.
  { name: "todo title=200 emoji", event: ev("Todo", "create", { title: "😀".repeat(200) }), want: { allow: true, message: "" } },
  { name: "todo delete", event: ev("Todo", "delete", { title: "a".repeat(500) }), want: { allow: true, message: "" } },
  { name: "board name=Inbox", event: ev("Board", "create", { name: "Inbox" }), want: { allow: true, message: "" } },
  {
    name: "board name=empty",
    event: ev("Board", "create", { name: "" }),
    want: { allow: false, message: "board name must not be empty" },
  },
  {
    name: "board name=blank",
    event: ev("Board", "update", { name: " \t\n " }),
    want: { allow: false, message: "board name must not be empty" },
  },
  {
    name: "board name=missing",
    event: ev("Board", "create", {}),
    want: { allow: false, message: "board name must not be empty" },
  },
  { name: "board delete", event: ev("Board", "delete", {}), want: { allow: true, message: "" } },
  { name: "other model", event: ev("User", "create", { name: "" }), want: { allow: true, message: "" } },
];

for (const c of cases) {
  test(`check/${c.name}`, () => {
    assert.deepEqual(check([c.event]), [c.want]);
  });
}

test("check keeps the order of the events", () => {
  const got = check([
    ev("Board", "create", { name: "" }),
    ev("Todo", "create", { title: "ok" }),
    ev("Todo", "create", { title: "x".repeat(MAX_TITLE_LENGTH + 1) }),
  ]);
  assert.deepEqual(
    got.map((v) => v.allow),
    [false, true, false],
  );
});

test("check rejects a payload that is not a JSON object as a bad request", () => {
  for (const payload of ["not json", "[]", "null", '"s"']) {
    assert.throws(() => check([ev("Todo", "create", payload)]), BadRequestError);
  }
});

test("codePoints counts surrogate pairs once", () => {
  assert.equal(codePoints("a😀b"), 3);
  assert.equal(codePoints(""), 0);
});
