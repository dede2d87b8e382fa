// The official CloudEvents JS SDK's emitter as a real client of the broker
// ingress: `outpost broker` runs on a free port; the SDK's emitterFor()
// encodes events in binary and in structured mode and POSTs them; every
// one must get 202, and /metrics must count each as accepted. A transport
// of our own sends the SDK's message, because the SDK's httpTransport does
// not report the status code.
//
// Usage: node emitter.mjs /path/to/outpost
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
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

function transport(url) {
  return (message) =>
    new Promise((resolve, reject) => {
      const req = http.request(url, { method: "POST", headers: message.headers }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      req.on("error", reject);
      req.end(message.body);
    });
}

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
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

test("the SDK's emitter gets 202 in binary and structured mode", async () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-emitter-"));
  const port = await freePort();
  const broker = spawn(outpost, ["broker", "--listen", `127.0.0.1:${port}`, "--data",
                                 join(dir, "broker.db")], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await new Promise((resolve, reject) => {
      let out = "";
      broker.stdout.on("data", (c) => {
        out += c;
        if (out.includes("listening on")) resolve();
      });
      broker.on("exit", (code) => reject(new Error(`outpost broker exited with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}/default/default`;
    let sent = 0;
    for (const mode of [Mode.BINARY, Mode.STRUCTURED]) {
      const emit = emitterFor(transport(url), { mode });
      for (const ev of events) {
        const res = await emit(ev);
        assert.equal(res.status, 202, `${mode} ${ev.subject ?? ev.datacontenttype}: ${res.body}`);
        sent++;
      }
    }
    const metrics = await get(`http://127.0.0.1:${port}/metrics`);
    assert.match(metrics, new RegExp(
      `^outpost_ingress_events_accepted_total\\{broker="default/default"\\} ${sent}$`, "m"));
  } finally {
    broker.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
});
