// conformance.mjs — Outpost's CloudEvents codecs (core/ce.h) against the
// official CloudEvents JS SDK, in both directions, over the HTTP binding
// (binary and structured modes) and the Kafka binding (binary and structured).
//
//   node conformance.mjs /path/to/ce_peer        (or CE_PEER=/path node ...)
//
// ce_peer (ce_peer.c) is our side: one JSON request per line in, one JSON
// response per line out. For every event of TABLE:
//   SDK -> us  the SDK writes the four messages; ce_peer decodes them; our
//              event (as ce_json_encode writes it) must equal the SDK's.
//   us -> SDK  ce_peer encodes the event in each mode; the message must be
//              exactly what the bindings prescribe, and the SDK must read the
//              same event back from it.
// Plus fixed wire vectors and messages our side must reject.
//
// Where the SDK differs from CloudEvents 1.0.2 (it does not percent-encode or
// -decode HTTP header values, it adds a Content-Type, it invents a time, ...)
// the difference is undone in one named place, with the reason next to it.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
if (!existsSync(`${here}node_modules/cloudevents/package.json`)) {
  console.error(
    `conformance: the CloudEvents JS SDK is not installed in ${here}node_modules.\n` +
      "conformance: run scripts/setup.sh (it runs `npm ci` in tests/conformance).",
  );
  process.exit(1);
}
const { CloudEvent, HTTP, Kafka } = await import("cloudevents");

const PEER = process.argv[2] || process.env.CE_PEER;
if (!PEER || !existsSync(PEER)) {
  console.error("conformance: usage: node conformance.mjs /path/to/ce_peer (or set CE_PEER)");
  process.exit(1);
}

// ---------------------------------------------------------------- the peer

// One ce_peer process answers requests in order. Should it die (a crash, a
// sanitizer report), the requests in flight fail, the death is recorded for
// the last test, and the next request starts a fresh process, so one crash
// costs one test, not the rest of the run.
class Peer {
  constructor(path) {
    this.path = path;
    this.proc = null;
    this.deaths = [];
  }

  start() {
    const proc = spawn(this.path, [], { stdio: ["pipe", "pipe", "inherit"] });
    const pending = [];
    const fail = (err) => {
      for (const p of pending.splice(0)) p.reject(err);
    };
    proc.exited = new Promise((resolve) => {
      proc.on("exit", (code, signal) => {
        if (this.proc === proc) this.proc = null;
        if (!proc.closing) this.deaths.push(`code ${code}, signal ${signal}`);
        fail(new Error(`ce_peer exited (code ${code}, signal ${signal})`));
        resolve({ code, signal });
      });
    });
    proc.on("error", fail);
    proc.stdin.on("error", () => {}); // EPIPE after a crash: reported by "exit"
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const p = pending.shift();
      if (!p) return;
      try {
        p.resolve(JSON.parse(line));
      } catch {
        p.reject(new Error(`ce_peer answered with something that is not JSON: ${line}`));
      }
    });
    proc.pending = pending;
    this.proc = proc;
  }

  call(req) {
    if (!this.proc) this.start();
    const proc = this.proc;
    return new Promise((resolve, reject) => {
      proc.pending.push({ resolve, reject });
      proc.stdin.write(`${JSON.stringify(req)}\n`);
    });
  }

  // Ends the current process by closing its input; resolves to its exit.
  async close() {
    if (!this.proc) return { code: 0, signal: null };
    const proc = this.proc;
    proc.closing = true;
    proc.stdin.end();
    return proc.exited;
  }
}

const peer = new Peer(PEER);
after(() => peer.proc?.kill());

async function ok(req) {
  const res = await peer.call(req);
  assert.equal(
    res.ok,
    true,
    `ce_peer ${req.op} failed: ${res.peer_error ?? `${res.errno} attr=${res.attr} ${res.reason}`}`,
  );
  return res;
}

// ---------------------------------------------------------------- the events

const bytes256 = Uint8Array.from({ length: 256 }, (_, i) => i);
const base = (id) => ({
  specversion: "1.0",
  id,
  source: "urn:outpost:conformance",
  type: "com.example.conformance",
});

// Each entry: attrs as in the JSON format, and data as
// {json: value} | {text: string} | {bytes: Uint8Array} | absent. Most carry a
// time because the SDK's Kafka reader cannot read an event without one.
const TABLE = [
  { name: "required attributes only", attrs: base("req-1") },
  {
    name: "all optional attributes",
    attrs: {
      ...base("opt-1"),
      source: "https://example.com/sources/a?x=1#frag",
      datacontenttype: "application/json",
      dataschema: "https://example.com/schemas/order-v1.json",
      subject: "orders/42",
      time: "2021-05-06T07:08:09.123Z",
    },
    data: { json: { ok: true } },
  },
  {
    name: "time with a positive offset",
    attrs: { ...base("time-1"), time: "2021-05-06T09:08:09.456+02:00" },
  },
  {
    name: "time with a negative offset",
    attrs: { ...base("time-2"), time: "2021-05-05T21:38:09.789-09:30" },
  },
  {
    name: "string, boolean and integer extensions",
    attrs: {
      ...base("ext-1"),
      time: "2022-02-03T04:05:06Z",
      extstr: "plain-value",
      exttrue: true,
      extfalse: false,
      extint: 42,
      extmin: -2147483648,
      extmax: 2147483647,
    },
  },
  {
    name: "JSON object data",
    attrs: {
      ...base("json-1"),
      datacontenttype: "application/json",
      time: "2022-02-03T04:05:06.007Z",
    },
    data: {
      json: {
        name: "Outpost",
        count: 3,
        ratio: 0.5,
        nested: { list: [1, 2, 3], none: null, yes: true },
        text: "naïve € 😀",
      },
    },
  },
  {
    name: "JSON array data, no datacontenttype",
    attrs: base("json-2"),
    data: { json: [1, "two", { three: 3 }, null, false] },
  },
  {
    name: "JSON data under a +json media type",
    attrs: {
      ...base("json-3"),
      datacontenttype: "application/vnd.outpost.test+json",
      time: "2022-02-03T04:05:06.5+00:00",
    },
    data: { json: { a: 1, b: [true] } },
  },
  {
    name: "text/plain data",
    attrs: {
      ...base("text-1"),
      datacontenttype: "text/plain; charset=utf-8",
      time: "1999-12-31T23:59:59.999Z",
    },
    data: { text: "hello, world — ünïcode €" },
  },
  {
    name: "binary data, 256 bytes",
    attrs: {
      ...base("bin-1"),
      datacontenttype: "application/octet-stream",
      time: "2022-02-03T04:05:06Z",
    },
    data: { bytes: bytes256 },
  },
  {
    name: "binary data, 5 bytes",
    attrs: { ...base("bin-2"), datacontenttype: "application/octet-stream" },
    data: { bytes: Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x00]) },
  },
  {
    name: "unicode attribute values",
    attrs: {
      ...base("id-ü-1"),
      subject: "Euro € 😀",
      extuni: "Grüße, 世界",
      time: "2022-02-03T04:05:06Z",
    },
  },
  {
    name: "characters the HTTP binding must percent-encode",
    attrs: { ...base("pct-1"), subject: '100% "sure" ok', time: "2022-02-03T04:05:06Z" },
    // The SDK writes header values as they are (no percent-encoding, against
    // HTTP binding §3.1.3.2), so its binary message for this event carries a
    // bare "%" that no conformant receiver can decode: not a test of us.
    skipSdkHttpBinary: "the SDK does not percent-encode '%' and '\"' in headers",
  },
  {
    name: "partitionkey (Kafka record key)",
    attrs: {
      ...base("pk-1"),
      partitionkey: "order-42",
      datacontenttype: "application/json",
      time: "2022-02-03T04:05:06Z",
    },
    data: { json: { order: 42 } },
  },
];

const KNOWN = new Set([
  "specversion",
  "id",
  "source",
  "type",
  "datacontenttype",
  "dataschema",
  "subject",
  "time",
]);

function sdkEvent(entry) {
  const d = entry.data;
  const data = d === undefined ? undefined : (d.json ?? d.text ?? d.bytes);
  return new CloudEvent(d === undefined ? { ...entry.attrs } : { ...entry.attrs, data });
}

// The entry in the JSON event format, as text (sent to ce_peer verbatim).
function formatJson(entry) {
  const obj = { ...entry.attrs };
  const d = entry.data;
  if (d?.bytes) obj.data_base64 = Buffer.from(d.bytes).toString("base64");
  else if (d) obj.data = d.json !== undefined ? d.json : d.text;
  return JSON.stringify(obj);
}

// ---------------------------------------------------------------- the model
// A "view" is {attrs: {name: value}, data: {json: v} | {bytes: [..]} | undefined},
// the shape both sides' events are reduced to before comparing.

// Our event, as ce_json_encode wrote it.
function viewOurs(json) {
  assert.equal(typeof json, "object", "ce_json_encode must write a JSON object");
  const attrs = { ...json };
  delete attrs.data;
  delete attrs.data_base64;
  assert.ok(!("data" in json && "data_base64" in json), "data and data_base64 both present");
  let data;
  if ("data_base64" in json) {
    const b = Buffer.from(json.data_base64, "base64");
    assert.equal(b.toString("base64"), json.data_base64, "data_base64 is not canonical base64");
    data = { bytes: [...b] };
  } else if ("data" in json) {
    data = { json: json.data };
  }
  return { attrs, data };
}

function viewSdk(ev) {
  const attrs = {};
  for (const [k, v] of Object.entries(ev)) {
    if (v === undefined || k === "data" || k === "data_base64") continue;
    attrs[k] = v;
  }
  let data;
  if (ev.data_base64 !== undefined) data = { bytes: [...Buffer.from(ev.data_base64, "base64")] };
  else if (ev.data !== undefined) data = { json: ev.data };
  return { attrs, data };
}

function viewEntry(entry) {
  const d = entry.data;
  let data;
  if (d?.bytes) data = { bytes: [...d.bytes] };
  else if (d) data = { json: d.json !== undefined ? d.json : d.text };
  return { attrs: { ...entry.attrs }, data };
}

// RFC 3339 timestamp -> nanoseconds since the epoch (BigInt), so that times
// are compared as instants: the SDK rewrites every time as UTC milliseconds
// ("...T07:08:09.123Z"), which names the same instant as "...T09:08:09.123+02:00".
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|([+-])(\d{2}):(\d{2}))$/;

function instant(s) {
  const m = RFC3339.exec(s);
  assert.ok(m, `not an RFC 3339 timestamp: ${JSON.stringify(s)}`);
  const [, y, mo, d, h, mi, sec, frac = "", z, sign, oh, om] = m;
  const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +sec);
  let ns = BigInt(ms) * 1000000n + BigInt((frac + "000000000").slice(0, 9));
  if (z.toUpperCase() !== "Z") {
    const off = BigInt((+oh * 60 + +om) * 60) * 1000000000n;
    ns += sign === "+" ? -off : off;
  }
  return ns;
}

function assertSameEvent(actual, expected, what) {
  assert.deepEqual(
    Object.keys(actual.attrs).sort(),
    Object.keys(expected.attrs).sort(),
    `${what}: attribute names`,
  );
  for (const [k, v] of Object.entries(expected.attrs)) {
    if (k === "time") {
      assert.equal(typeof actual.attrs.time, "string", `${what}: time is a string`);
      const t = actual.attrs.time;
      assert.equal(instant(t), instant(v), `${what}: time ${t} vs ${v}`);
    } else {
      assert.equal(actual.attrs[k], v, `${what}: attribute ${k}`);
    }
  }
  assert.deepEqual(actual.data, expected.data, `${what}: data`);
}

// In binary mode every attribute travels as its canonical string (spec §Type
// System), and a receiver that knows no extension schema cannot tell 42 from
// "42": extensions decoded from binary mode are strings.
function stringifyExtensions(view) {
  const attrs = {};
  for (const [k, v] of Object.entries(view.attrs)) attrs[k] = KNOWN.has(k) ? v : String(v);
  return { ...view, attrs };
}

// ---------------------------------------------------------------- the wire

// HTTP binding §3.1.3.2: UTF-8 bytes of space, '"', '%' and everything
// outside U+0021..U+007E become %XY (upper case); nothing else does.
const hex2 = (b) => b.toString(16).toUpperCase().padStart(2, "0");

function pctEncode(s) {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (c > 0x20 && c < 0x7f && ch !== '"' && ch !== "%") out += ch;
    else for (const b of Buffer.from(ch, "utf8")) out += `%${hex2(b)}`;
  }
  return out;
}

// A value's canonical string (spec §Type System).
const canonical = (v) => String(v);

// Header values as a transport delivers them: strings. The SDK hands
// booleans and numbers to the transport (node's http and kafkajs stringify
// them) and leaves undefined entries for attributes it does not have (which
// no transport sends).
function sdkHeaders(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = String(v);
  return out;
}

// A body or Kafka value as bytes. The SDK leaves serialising a Kafka value to
// the Kafka client (it hands over the data object itself); an application
// would JSON-encode it, as we do here.
function sdkBytes(v) {
  if (v === undefined || v === null) return null;
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === "string") return Buffer.from(v, "utf8");
  return Buffer.from(JSON.stringify(v), "utf8");
}

const b64 = (buf) => (buf === null ? null : buf.toString("base64"));

// How a body reaches an SDK application: octet-stream as a Buffer, anything
// else as text (what node's http and a string deserializer give it).
function bodyForSdk(buf, contentType) {
  if (buf === null || buf.length === 0) return undefined;
  return contentType?.startsWith("application/octet-stream") ? buf : buf.toString("utf8");
}

// JSON format §3.1 / our ce_media_type_is_json: absent, application/json,
// text/json and any +json type are JSON.
function isJsonType(ct) {
  if (ct === undefined) return true;
  const t = ct.split(";")[0].trim().toLowerCase();
  return t === "application/json" || t === "text/json" || t.endsWith("+json");
}

// Checks a binary-mode body / value against the entry's data, byte for byte.
function assertBinaryPayload(buf, entry, what) {
  const d = entry.data;
  if (!d) {
    assert.ok(buf === null || buf.length === 0, `${what}: an event without data has no body`);
    return;
  }
  assert.ok(buf !== null, `${what}: body missing`);
  if (d.bytes) assert.deepEqual([...buf], [...d.bytes], `${what}: binary data`);
  else if (d.text !== undefined) assert.equal(buf.toString("utf8"), d.text, `${what}: text data`);
  else assert.deepEqual(JSON.parse(buf.toString("utf8")), d.json, `${what}: JSON data`);
}

// ---------------------------------------------------------------- SDK -> us

const sdkToUs = {
  async "HTTP binary"(entry, t) {
    if (entry.skipSdkHttpBinary) return t.skip(entry.skipSdkHttpBinary);
    const ev = sdkEvent(entry);
    // The SDK writes header values without percent-encoding them, so
    // non-ASCII text arrives as raw UTF-8 (RFC 7230 obs-text); percent-
    // decoding leaves it as it is, and we take it as sent.
    const msg = HTTP.binary(ev);
    const headers = sdkHeaders(msg.headers);
    const res = await ok({
      op: "http_decode",
      headers,
      body_b64: b64(sdkBytes(msg.body)),
    });
    assert.equal(res.mode, "binary");
    const expected = stringifyExtensions(viewSdk(ev));
    // The SDK always writes a Content-Type (application/json by default), and
    // HTTP binding §3.1.1 maps Content-Type to datacontenttype.
    expected.attrs.datacontenttype ??= headers["content-type"];
    assertSameEvent(viewOurs(res.event), expected, "decoded event");
  },

  async "HTTP structured"(entry) {
    const ev = sdkEvent(entry);
    const msg = HTTP.structured(ev);
    const res = await ok({
      op: "http_decode",
      headers: sdkHeaders(msg.headers),
      body_b64: b64(sdkBytes(msg.body)),
    });
    assert.equal(res.mode, "structured");
    assertSameEvent(viewOurs(res.event), viewSdk(ev), "decoded event");
  },

  async "Kafka binary"(entry) {
    const ev = sdkEvent(entry);
    // Besides content-type the SDK writes a ce_datacontenttype header with
    // the same value; it goes to us as sent.
    const msg = Kafka.binary(ev);
    assert.equal(msg.key, entry.attrs.partitionkey, "SDK key");
    const res = await ok({
      op: "kafka_decode",
      headers: sdkHeaders(msg.headers),
      key: msg.key ?? null,
      value_b64: b64(sdkBytes(msg.value)),
    });
    assert.equal(res.mode, "binary");
    assertSameEvent(viewOurs(res.event), stringifyExtensions(viewSdk(ev)), "decoded event");
  },

  async "Kafka structured"(entry) {
    const ev = sdkEvent(entry);
    const msg = Kafka.structured(ev);
    const res = await ok({
      op: "kafka_decode",
      headers: sdkHeaders(msg.headers),
      key: msg.key ?? null,
      value_b64: b64(sdkBytes(msg.value)),
    });
    assert.equal(res.mode, "structured");
    assertSameEvent(viewOurs(res.event), viewSdk(ev), "decoded event");
  },
};

// ---------------------------------------------------------------- us -> SDK

// What the SDK must read back: the entry, less what the SDK cannot carry.
function expectedFromSdk(entry, { binary }) {
  let v = viewEntry(entry);
  if (binary) v = stringifyExtensions(v);
  return v;
}

// The SDK's event as the spec would have it read: it invents a time when
// none was sent (CloudEvent's constructor fills in "now"); the wire checks
// already proved we sent none, so that invented time is dropped.
function sdkRead(ev, entry) {
  const v = viewSdk(ev);
  if (entry.attrs.time === undefined) delete v.attrs.time;
  return v;
}

// The SDK hands JSON bodies over parsed only for exactly application/json
// (HTTP) or application/json* (Kafka); for other JSON types (absent, +json)
// it gives the text. The JSON format makes those JSON too, so the text is
// parsed here.
function parseSdkJsonText(v, entry) {
  const d = entry.data;
  const jsonData = d?.json !== undefined && isJsonType(entry.attrs.datacontenttype);
  if (jsonData && typeof v.data?.json === "string") v.data = { json: JSON.parse(v.data.json) };
  return v;
}

// The header names binary mode must write for entry: one per attribute,
// datacontenttype as content-type, nothing else.
function binaryHeaderNames(entry, prefix) {
  const names = Object.keys(entry.attrs).map((k) =>
    k === "datacontenttype" ? "content-type" : `${prefix}${k}`,
  );
  return names.sort();
}

// HTTP header names are case-insensitive; node's http lower-cases them.
const lowerNames = (h) =>
  Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

// The JSON format's media type, with at most a UTF-8 charset (JSON format §2.5).
const CE_JSON_TYPE = /^application\/cloudevents\+json(; ?charset=utf-8)?$/i;

const usToSdk = {
  async "HTTP binary"(entry) {
    const res = await ok({ op: "http_encode", event: formatJson(entry), mode: "binary" });
    const body = Buffer.from(res.body_b64, "base64");

    // The wire: one ce-<name> header per attribute with its canonical string
    // percent-encoded (§3.1.3), datacontenttype as Content-Type (§3.1.1),
    // nothing else; the body is the data (§3.1.2).
    const got = lowerNames(res.headers);
    assert.deepEqual(Object.keys(got).sort(), binaryHeaderNames(entry, "ce-"), "header names");
    for (const [k, v] of Object.entries(entry.attrs)) {
      if (k === "datacontenttype") assert.equal(got["content-type"], v, "Content-Type as is");
      else if (k === "time") assert.equal(instant(got["ce-time"]), instant(v), "ce-time");
      else assert.equal(got[`ce-${k}`], pctEncode(canonical(v)), `ce-${k} percent-encoded`);
    }
    assertBinaryPayload(body, entry, "body");

    // The SDK reads it (header names lower-cased, as node's http gives them).
    const ev = HTTP.toEvent({ headers: got, body: bodyForSdk(body, got["content-type"]) });
    const v = parseSdkJsonText(sdkRead(ev, entry), entry);
    // The SDK does not percent-decode header values (HTTP binding §3.1.3.2
    // says a receiver MUST), so we do it for every attribute it took from a
    // ce- header.
    for (const k of Object.keys(v.attrs))
      if (k !== "datacontenttype" && k !== "time") v.attrs[k] = decodeURIComponent(v.attrs[k]);
    assertSameEvent(v, expectedFromSdk(entry, { binary: true }), "event the SDK read");
  },

  async "HTTP structured"(entry) {
    const res = await ok({ op: "http_encode", event: formatJson(entry), mode: "structured" });
    const body = Buffer.from(res.body_b64, "base64");
    const got = lowerNames(res.headers);
    assert.match(got["content-type"] ?? "", CE_JSON_TYPE, "Content-Type (§3.2.1)");
    assertSameEvent(viewOurs(JSON.parse(body.toString("utf8"))), viewEntry(entry), "JSON body");

    // The SDK's HTTP reader matches the Content-Type case-sensitively and
    // knows only "charset=utf-8", so we send exactly that (charset names are
    // case-insensitive, RFC 2046 §4.1.2): the SDK gets our headers unchanged.
    const forSdk = got;
    const ev = HTTP.toEvent({ headers: forSdk, body: body.toString("utf8") });
    const want = expectedFromSdk(entry, { binary: false });
    assertSameEvent(sdkRead(ev, entry), want, "event the SDK read");
  },

  async "Kafka binary"(entry) {
    const res = await ok({ op: "kafka_encode", event: formatJson(entry), mode: "binary" });
    const value = res.value_b64 === null ? null : Buffer.from(res.value_b64, "base64");

    // The wire (Kafka binding §3.2): ce_<name> headers with the canonical
    // strings as they are (no percent-encoding in Kafka), datacontenttype as
    // content-type, the data as the value, no value at all without data
    // (§3.2.2), partitionkey as the key and still as a header (§3.1).
    const names = Object.keys(res.headers).sort();
    assert.deepEqual(names, binaryHeaderNames(entry, "ce_"), "header names");
    for (const [k, v] of Object.entries(entry.attrs)) {
      if (k === "datacontenttype") assert.equal(res.headers["content-type"], v, "content-type");
      else if (k === "time") assert.equal(instant(res.headers.ce_time), instant(v), "ce_time");
      else assert.equal(res.headers[`ce_${k}`], canonical(v), `ce_${k}`);
    }
    assert.equal(res.key, entry.attrs.partitionkey ?? null, "record key");
    if (!entry.data) assert.equal(value, null, "an event without data is a record without a value");
    assertBinaryPayload(value, entry, "value");

    // The SDK refuses records without a value ("Value is null or undefined"),
    // though §3.2.2 defines them: for those the wire checks above are all.
    if (value === null) return "SDK read-back skipped: the SDK reads no record without a value";
    const ev = Kafka.toEvent({
      headers: res.headers,
      key: res.key ?? undefined,
      value: bodyForSdk(value, res.headers["content-type"]),
    });
    const v = parseSdkJsonText(sdkRead(ev, entry), entry);
    assertSameEvent(v, expectedFromSdk(entry, { binary: true }), "event the SDK read");
  },

  async "Kafka structured"(entry) {
    const res = await ok({ op: "kafka_encode", event: formatJson(entry), mode: "structured" });
    assert.match(res.headers["content-type"] ?? "", CE_JSON_TYPE, "content-type (§3.3.1)");
    assert.equal(res.key, entry.attrs.partitionkey ?? null, "record key");
    assert.notEqual(res.value_b64, null, "structured mode always has a value (§3.3.2)");
    const value = Buffer.from(res.value_b64, "base64");
    assertSameEvent(viewOurs(JSON.parse(value.toString("utf8"))), viewEntry(entry), "JSON value");

    // The SDK's Kafka reader does new Date(time).toISOString() unconditionally
    // and throws on an event without time.
    if (entry.attrs.time === undefined) return "SDK read-back skipped: the SDK needs a time";
    const ev = Kafka.toEvent({
      headers: res.headers,
      key: res.key ?? undefined,
      value: value.toString("utf8"),
    });
    const want = expectedFromSdk(entry, { binary: false });
    assertSameEvent(sdkRead(ev, entry), want, "event the SDK read");
  },
};

for (const [title, suite] of [
  ["SDK -> Outpost", sdkToUs],
  ["Outpost -> SDK", usToSdk],
]) {
  describe(title, () => {
    for (const entry of TABLE) {
      describe(entry.name, () => {
        for (const [mode, fn] of Object.entries(suite)) {
          test(mode, async (t) => {
            const note = await fn(entry, t);
            if (typeof note === "string") t.diagnostic(note);
          });
        }
      });
    }
  });
}

// ---------------------------------------------------------------- fixed vectors

const hdrs = (extra) => ({
  "ce-specversion": "1.0",
  "ce-id": "vec-1",
  "ce-source": "urn:outpost:vectors",
  "ce-type": "com.example.vector",
  ...extra,
});

// An HTTP binary-mode message without body: the required headers and extra.
const httpBinary = (extra) => ({ op: "http_decode", headers: hdrs(extra), body_b64: null });

async function httpSubject(value) {
  const res = await ok(httpBinary({ "ce-subject": value }));
  return res.event.subject;
}

describe("HTTP header decoding (§3.1.3.2)", () => {
  test("the spec's example decodes", async () => {
    assert.equal(await httpSubject("Euro%20%E2%82%AC%20%F0%9F%98%80"), "Euro € 😀");
  });
  test("lower-case hex is accepted", async () => {
    assert.equal(await httpSubject("Euro%20%e2%82%ac"), "Euro €");
  });
  test("needlessly encoded characters are accepted", async () => {
    assert.equal(await httpSubject("%41%42C%2F"), "ABC/");
  });
  test("one round of decoding only", async () => {
    assert.equal(await httpSubject("100%2541"), "100%41");
  });
  test("an RFC 7230 quoted-string is unquoted, then percent-decoded", async () => {
    assert.equal(await httpSubject('"Euro%20%E2%82%AC"'), "Euro €");
    assert.equal(await httpSubject('"say \\"hi\\""'), 'say "hi"');
  });
  test("we encode the spec's example as the spec does", async () => {
    const event = formatJson({ attrs: { ...base("v"), subject: "Euro € 😀" } });
    const res = await ok({ op: "http_encode", event, mode: "binary" });
    assert.equal(res.headers["ce-subject"], "Euro%20%E2%82%AC%20%F0%9F%98%80");
  });
});

describe("Kafka headers are not percent-decoded", () => {
  test("ce_subject %C0%A0 is that text", async () => {
    const res = await ok({
      op: "kafka_decode",
      headers: {
        ce_specversion: "1.0",
        ce_id: "k-1",
        ce_source: "urn:outpost:vectors",
        ce_type: "com.example.vector",
        ce_subject: "%C0%A0",
      },
      key: null,
      value_b64: null,
    });
    assert.equal(res.event.subject, "%C0%A0");
    const hasData = "data" in res.event || "data_base64" in res.event;
    assert.equal(hasData, false, "a record without value has no data");
  });
});

describe("JSON format members in any order", () => {
  // A JSON object's members are unordered: "data" before "datacontenttype"
  // must still be read as text/plain, not as JSON.
  test("data before datacontenttype", async () => {
    const body = JSON.stringify({
      data: 'a "quoted" text',
      datacontenttype: "text/plain",
      ...base("ord-1"),
    });
    const res = await ok({
      op: "http_decode",
      headers: { "content-type": "application/cloudevents+json" },
      body_b64: Buffer.from(body, "utf8").toString("base64"),
    });
    assert.equal(res.event.data, 'a "quoted" text');
    const bin = await ok({ op: "http_encode", event: body, mode: "binary" });
    assert.equal(Buffer.from(bin.body_b64, "base64").toString("utf8"), 'a "quoted" text');
  });
});

// ---------------------------------------------------------------- rejections

async function rejected(req, attr) {
  const res = await peer.call(req);
  assert.equal(res.ok, false, `ce_peer accepted what it must reject: ${JSON.stringify(res)}`);
  assert.equal(res.peer_error, undefined, `peer error instead of a core error: ${res.peer_error}`);
  assert.equal(res.errno, "EINVAL", `errno (${res.reason})`);
  assert.equal(res.attr, attr, `attribute at fault (${res.reason})`);
}

const kafkaHdrs = (extra) => ({
  ce_specversion: "1.0",
  ce_id: "k-2",
  ce_source: "urn:outpost:vectors",
  ce_type: "com.example.vector",
  ...extra,
});
const structured = (obj) => Buffer.from(JSON.stringify(obj), "utf8").toString("base64");
const jsonCt = { "content-type": "application/cloudevents+json" };

const kafkaBinary = (extra) => ({
  op: "kafka_decode",
  headers: kafkaHdrs(extra),
  key: null,
  value_b64: null,
});
const structuredHttp = (obj) => ({ op: "http_decode", headers: jsonCt, body_b64: structured(obj) });
const structuredKafka = (obj) => ({
  op: "kafka_decode",
  headers: jsonCt,
  key: null,
  value_b64: structured(obj),
});

// (A member set to undefined is left out by JSON.stringify: that is how the
// "no id" messages below lose their id.)
describe("messages our side must reject", () => {
  test("HTTP binary, specversion 0.1", () =>
    rejected(httpBinary({ "ce-specversion": "0.1" }), "specversion"));
  test("HTTP binary, overlong UTF-8 %C0%A0 in a header", () =>
    rejected(httpBinary({ "ce-subject": "a%C0%A0b" }), "subject"));
  test("HTTP binary, truncated UTF-8 %E2%82 in a header", () =>
    rejected(httpBinary({ "ce-subject": "%E2%82" }), "subject"));
  test("HTTP binary, no ce-id", () => rejected(httpBinary({ "ce-id": undefined }), "id"));
  test("HTTP binary, time that is not RFC 3339", () =>
    rejected(httpBinary({ "ce-time": "2021-13-01T00:00:00Z" }), "time"));
  test("HTTP structured, specversion 0.1", () =>
    rejected(structuredHttp({ ...base("s-1"), specversion: "0.1" }), "specversion"));
  test("HTTP structured, empty source", () =>
    rejected(structuredHttp({ ...base("s-2"), source: "" }), "source"));
  test("Kafka binary, specversion 0.1", () =>
    rejected(kafkaBinary({ ce_specversion: "0.1" }), "specversion"));
  test("Kafka structured, no id", () =>
    rejected(structuredKafka({ ...base("x"), id: undefined }), "id"));
  test("encoding an event with specversion 0.1", () => {
    const event = JSON.stringify({ ...base("e-1"), specversion: "0.1" });
    return rejected({ op: "http_encode", event, mode: "binary" }, "specversion");
  });
});

// Last: ce_peer never died during the run, and exits cleanly at the end of
// its input (a crash or a sanitizer report shows here).
test("ce_peer exits cleanly", async () => {
  const { code, signal } = await peer.close();
  assert.deepEqual(peer.deaths, [], "ce_peer died during the run");
  assert.equal(signal, null, "ce_peer was killed by a signal");
  assert.equal(code, 0, "ce_peer exit status");
});
