// go-plugin's AutoMTLS from the plugin side. When the host sets
// ClientConfig.AutoMTLS it passes its own throw-away certificate in
// PLUGIN_CLIENT_CERT and expects the plugin to serve TLS with a throw-away
// certificate of its own (trusting only the host's), announced as the sixth
// field of the handshake line: the DER certificate in base64 without padding.
// A Go plugin gets this from go-plugin's Serve; here it is by hand, because
// Node's crypto makes keys and signatures but not certificates. The
// certificate mirrors go-plugin's generateCert: self-signed, CN and DNS name
// "localhost" (the host's tls.Config.ServerName), a CA (the host puts it in
// its RootCAs and ClientCAs), server and client auth.

import { createPublicKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";

export interface PluginCert {
  /** PEM certificate, for the TLS server */
  certPem: string;
  /** PEM PKCS#8 private key, for the TLS server */
  keyPem: string;
  /** the handshake's sixth field: base64 (no padding) of the DER certificate */
  handshake: string;
}

/** Makes a self-signed P-256 certificate for "localhost", valid from 30 s ago for a year. */
export function generatePluginCert(now: Date = new Date()): PluginCert {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });

  const name = seq(
    set(seq(oid("2.5.4.10"), utf8("syncplane"))), // O
    set(seq(oid("2.5.4.3"), utf8("localhost"))), // CN
  );
  const ecdsaWithSHA256 = seq(oid("1.2.840.10045.4.3.2"));
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x3f) | 0x40; // positive, and minimally encoded

  const extensions = seq(
    // keyUsage (critical): digitalSignature, keyEncipherment, keyAgreement, keyCertSign
    ext("2.5.29.15", true, bitString(Buffer.from([0xac]), 2)),
    // extKeyUsage: clientAuth, serverAuth
    ext("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.2"), oid("1.3.6.1.5.5.7.3.1"))),
    // basicConstraints (critical): CA
    ext("2.5.29.19", true, seq(tlv(0x01, Buffer.from([0xff])))),
    // subjectAltName: dNSName localhost
    ext("2.5.29.17", false, seq(tlv(0x82, Buffer.from("localhost", "ascii")))),
  );

  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // [0] version v3
    integer(serial),
    ecdsaWithSHA256,
    name, // issuer
    seq(utcTime(new Date(now.getTime() - 30_000)), utcTime(new Date(now.getTime() + 365 * 24 * 3600_000))),
    name, // subject
    spki,
    tlv(0xa3, extensions), // [3] extensions
  );
  const signature = sign("sha256", tbs, privateKey); // DER ECDSA-Sig-Value
  const der = seq(tbs, ecdsaWithSHA256, bitString(signature, 0));

  return {
    certPem: pem("CERTIFICATE", der),
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    handshake: der.toString("base64").replace(/=+$/, ""),
  };
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

// --- a minimal DER encoder -------------------------------------------------

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) {
    len = Buffer.from([n]);
  } else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) {
      bytes.unshift(v & 0xff);
    }
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

function set(...items: Buffer[]): Buffer {
  return tlv(0x31, Buffer.concat(items));
}

/** An INTEGER from big-endian magnitude bytes whose top bit is clear. */
function integer(bytes: Buffer): Buffer {
  return tlv(0x02, bytes);
}

function utf8(s: string): Buffer {
  return tlv(0x0c, Buffer.from(s, "utf8"));
}

function bitString(bytes: Buffer, unusedBits: number): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

function octetString(bytes: Buffer): Buffer {
  return tlv(0x04, bytes);
}

function ext(id: string, critical: boolean, value: Buffer): Buffer {
  const parts = [oid(id)];
  if (critical) {
    parts.push(tlv(0x01, Buffer.from([0xff])));
  }
  parts.push(octetString(value));
  return seq(...parts);
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split(".").map((a) => Number.parseInt(a, 10));
  const [first = 0, second = 0, ...rest] = arcs;
  const out = [40 * first + second];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) {
      chunk.unshift(0x80 | (v & 0x7f));
    }
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime YYMMDDHHMMSSZ (dates before 2050, as RFC 5280 requires for UTCTime). */
function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, "0");
  const s =
    p(d.getUTCFullYear() % 100) +
    p(d.getUTCMonth() + 1) +
    p(d.getUTCDate()) +
    p(d.getUTCHours()) +
    p(d.getUTCMinutes()) +
    p(d.getUTCSeconds()) +
    "Z";
  return tlv(0x17, Buffer.from(s, "ascii"));
}
