// The official CloudEvents JS SDK's emitter as a real client of the broker
// ingress: `outpost broker` runs on a free port; the SDK's emitterFor()
// encodes events in binary and in structured mode and POSTs them; every
// one must get 202, and /metrics must count each as accepted. A transport
// of our own sends the SDK's message, because the SDK's httpTransport does
// not report the status code. Twice: over HTTP, and over HTTPS (the broker
// with --tls-cert and --tls-key, a CA made with openssl that the transport
// trusts).
//
// Usage: node emitter.mjs /path/to/outpost
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { CloudEvent, emitterFor, Mode } from "cloudevents";

const outpost = process.argv[2] ?? process.env.OUTPOST;
if (!outpost) throw new Error("usage: node emitter.mjs /path/to/outpost");

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A CA and a certificate it signed for 127.0.0.1, in dir (openssl).
function makePki(dir) {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const ssl = (...args) => execFileSync("openssl", args, { stdio: "ignore" });
  ssl("req", "-x509", ...ec, "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.crt"),
      "-days", "2", "-subj", "/CN=emitter test CA");
  ssl("req", ...ec, "-keyout", join(dir, "srv.key"), "-out", join(dir, "srv.csr"),
      "-subj", "/CN=127.0.0.1");
  writeFileSync(join(dir, "ext"), "subjectAltName=IP:127.0.0.1\n");
  ssl("x509", "-req", "-in", join(dir, "srv.csr"), "-CA", join(dir, "ca.crt"), "-CAkey",
      join(dir, "ca.key"), "-CAcreateserial", "-out", join(dir, "srv.crt"), "-days", "2",
      "-extfile", join(dir, "ext"));
  return readFileSync(join(dir, "ca.crt"));
}

// http, or https trusting ca.
function client(ca) {
  return ca ? { mod: https, opts: { ca } } : { mod: http, opts: {} };
}

function transport(url, ca) {
  const { mod, opts } = client(ca);
  return (message) =>
    new Promise((resolve, reject) => {
      const req = mod.request(url, { ...opts, method: "POST", headers: message.headers }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      req.on("error", reject);
      req.end(message.body);
    });
}

function get(url, ca) {
  const { mod, opts } = client(ca);
  return new Promise((resolve, reject) => {
    mod.get(url, opts, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

const events = [
  new CloudEvent({ source: "/sdk", type: "dev.outpost.sdk", data: { hello: "world" } }),
  // ASCII subject: the SDK does not percent-encode header values (HTTP
  // binding §3.1.3.2), so Node refuses to send "€" in a ce-subject header.
  // conformance.mjs covers unicode attributes in both directions.
  new CloudEvent({ source: "/sdk", type: "dev.outpost.sdk", subject: "a subject",
                   data: "Euro € 😀", datacontenttype: "text/plain; charset=utf-8" }),
  new CloudEvent({ source: "/sdk", type: "dev.outpost.sdk", partitionkey: "env-1", count: 3,
                   flag: true, data: new Uint8Array([0, 1, 2, 255]),
                   datacontenttype: "application/octet-stream" }),
];

async function emitAll(tls) {
  const dir = mkdtempSync(join(tmpdir(), "outpost-emitter-"));
  const port = await freePort();
  const ca = tls ? makePki(dir) : null;
  const tlsArgs = tls ? ["--tls-cert", join(dir, "srv.crt"), "--tls-key", join(dir, "srv.key")] : [];
  const scheme = tls ? "https" : "http";
  const broker = spawn(outpost, ["broker", "--listen", `127.0.0.1:${port}`, "--data",
                                 join(dir, "broker.db"), ...tlsArgs],
                       { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await new Promise((resolve, reject) => {
      let out = "";
      broker.stdout.on("data", (c) => {
        out += c;
        if (out.includes(`listening on ${scheme}://`)) resolve();
      });
      broker.on("exit", (code) => reject(new Error(`outpost broker exited with ${code}`)));
    });
    const url = `${scheme}://127.0.0.1:${port}/default/default`;
    let sent = 0;
    for (const mode of [Mode.BINARY, Mode.STRUCTURED]) {
      const emit = emitterFor(transport(url, ca), { mode });
      for (const ev of events) {
        const res = await emit(ev);
        assert.equal(res.status, 202, `${mode} ${ev.subject ?? ev.datacontenttype}: ${res.body}`);
        sent++;
      }
    }
    const metrics = await get(`${scheme}://127.0.0.1:${port}/metrics`, ca);
    assert.match(metrics, new RegExp(
      `^outpost_ingress_events_accepted_total\\{broker="default/default"\\} ${sent}$`, "m"));
  } finally {
    broker.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the SDK's emitter gets 202 in binary and structured mode", () => emitAll(false));
test("the SDK's emitter gets 202 over HTTPS too", () => emitAll(true));
