import assert from "node:assert/strict";
import { test } from "node:test";

import { timestamp } from "./log";

test("timestamp has hclog's six fractional digits", () => {
  assert.equal(timestamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 67))), "2026-01-02T03:04:05.067000Z");
});
