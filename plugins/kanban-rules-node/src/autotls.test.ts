import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { test } from "node:test";

import { generatePluginCert } from "./autotls";

test("generatePluginCert makes a self-signed localhost CA for client and server auth", () => {
  const now = new Date();
  const c = generatePluginCert(now);
  const x = new X509Certificate(c.certPem);
  assert.equal(x.subject, "O=syncplane\nCN=localhost");
  assert.equal(x.issuer, x.subject);
  assert.equal(x.ca, true);
  assert.equal(x.checkHost("localhost"), "localhost");
  assert.equal(x.subjectAltName, "DNS:localhost");
  assert.deepEqual([...(x.keyUsage ?? [])].sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
  assert.ok(x.verify(x.publicKey), "self-signature verifies");
  assert.ok(x.checkPrivateKey(createPrivateKey(c.keyPem)));
  assert.ok(new Date(x.validFrom) <= now && now < new Date(x.validTo));
  // The handshake field is the DER in base64 without padding.
  assert.doesNotMatch(c.handshake, /=/);
  assert.deepEqual(Buffer.from(c.handshake, "base64"), x.raw);
});
