#!/usr/bin/env python3
"""`outpost detector` end to end: its events reach a real `outpost broker`
(embedded log) and, through a trigger, a Python HTTP subscriber.

Two suites, chosen by the second argument:

  publish  (no root; the detector runs with --no-bpf)
    - tenant events arrive at the subscriber as CloudEvents with the type,
      source, subject, extensions and data the README promises;
    - no token, a malformed one, an unknown one: 401; another tenant's: 403;
      bad bodies: 400 with a reason; too large: 413; nothing of them arrives;
    - GET/PUT /v1/limits: the admin token (401), 400 naming the member and
      the rule for a bad body, 503 for a good one (no kernel), 405;
    - the broker stopped: events are kept (retries counted) and all arrive,
      in order, once it is back; a full buffer answers 429, counted;
    - against a scripted fake ingress: Retry-After is honoured, a 400 naming
      one event of a batch drops that one (counted) and resends the rest in
      order, and a SIGTERM with the broker gone counts what is left.
  kernel   (root and eBPF; exit 77 otherwise)
    - an exec in a watched cgroup reaches the subscriber as
      dev.outpost.process.exec with the environment's attribution;
    - a policy PUT at run time kills a forbidden binary (action=killed), for
      an environment and for a namespace (environments watched later too);
    - the publisher's buffer overflows while the broker is down: drops counted
      by reason, kernel events read = delivered + dropped, and a
      dev.outpost.detector.drops event says the same;
    - a one-page ring overflows while the detector is stopped (SIGSTOP): the
      ring drops per kind in /metrics and in the drops event, and
      fork events delivered + fork drops = forks made;
    - a burst of forks in a watched cgroup raises dev.outpost.process.forkrate
      (critical, rate above the threshold), once per window and not per fork,
      counted in /metrics; a slow forker in another environment raises none.
    - with --rate-limit 200 a setuid flood in one environment is reported up
      to the budget and throttled beyond it (read + throttled + ring drops =
      calls made, in /metrics), a dev.outpost.detector.throttled event per
      period names the environment and its counts, and another environment's
      execs meanwhile all arrive (and it gets no throttled event);
    - the limit changed at run time (PUT /v1/limits: off, 100, off again)
      applies at once: a setuid flood is all reported, then cut, then all
      reported again;
    - a fork bomb whose forks are nearly all throttled (--rate-limit 20) still
      raises dev.outpost.process.forkrate: throttled forks count.
  kafka    (no root; needs kcat and tests/broker's kafka_mock tool)
    - `--kafka BOOTSTRAP --topic T`: tenant events are read back from the
      topic by kcat in the Kafka binding's binary mode (ce_ headers,
      content-type, key = partitionkey, the body as value), acknowledged
      events counted as published; with every Kafka broker down, events are
      kept and retried, and all arrive, in order per key, once they are up.

Every detector and broker is stopped with SIGTERM and must exit 0 without a
sanitizer report in its stderr.

Usage: test_detector_publish.py /path/to/outpost publish|kernel [unittest args]
       test_detector_publish.py /path/to/outpost kafka /path/to/kafka_mock [unittest args]
"""
import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker"))
from outpost_test import (Subscriber, cgroup2_root, ebpf_skip_reason, free_port, parse_metrics,  # noqa: E402
                          request, serve, wait_for)

OUTPOST = None
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
NODE = "node-a"
ADMIN = "adm-token"
TOKENS = {"alice": "alice-token", "bob": "bob-token"}


# ---------------------------------------------------------------- peers

class FakeIngress:
    """A scripted broker ingress: script(n, events) gives the nth request's
    (status, headers, body); every request's arrival time and events kept."""

    def __init__(self, script):
        self.port = free_port()
        self.lock = threading.Lock()
        self.requests = []  # (time, content type, [events])
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                events = json.loads(body)
                with fake.lock:
                    n = len(fake.requests)
                    fake.requests.append((time.monotonic(), self.headers.get("Content-Type"),
                                          events))
                status, headers, out = script(n, events)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = serve(self.port, Handler)
        self.url = f"http://127.0.0.1:{self.port}/default/default"

    def got(self):
        with self.lock:
            return list(self.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Proc:
    """An `outpost` subcommand; stdout read up to "listening on", stderr to a file."""

    def __init__(self, workdir, tag, args, env=None):
        self.errpath = os.path.join(workdir, f"{tag}-{time.monotonic_ns()}.stderr")
        self.err = open(self.errpath, "w")
        self.proc = subprocess.Popen([OUTPOST, *args], stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, env=env)
        self.out = []
        line = self.proc.stdout.readline()
        while line and not line.startswith("listening on"):
            self.out.append(line)
            line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise RuntimeError(f"outpost {tag} did not start ({self.proc.returncode}): "
                               + self.stderr())

    def stderr(self):
        with open(self.errpath) as f:
            return f.read()

    def stop(self):
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.proc.args[1]} did not stop within 60 s of SIGTERM")
        self.proc.stdout.close()
        self.err.close()
        return self.proc.returncode


class Detector(Proc):
    def __init__(self, workdir, broker_url, *args, kernel=False, env=None):
        self.port = free_port()
        flags = ["detector", *(["--broker-url", broker_url] if broker_url else []),
                 "--listen", f"127.0.0.1:{self.port}",
                 "--node", NODE, "--admin-token", ADMIN, "--batch-ms", "5"]
        for t, tok in TOKENS.items():
            flags += ["--tenant-token", f"{t}={tok}"]
        if not kernel:
            flags.append("--no-bpf")
        super().__init__(workdir, "detector", flags + list(args), env=env)

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def post(self, tenant, body, token=None, headers=None):
        h = dict(headers or {})
        tok = TOKENS.get(tenant) if token is None else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        h.setdefault("Content-Type", "application/json")
        return self.request("POST", f"/v1/tenants/{tenant}/events", body, h)

    def admin(self, method, path, body=None):
        r, data = self.request(method, path, body, {"Authorization": f"Bearer {ADMIN}"})
        return r.status, (json.loads(data) if data.strip() else None)

    def metrics(self):
        r, data = self.request("GET", "/metrics")
        assert r.status == 200, r.status
        return parse_metrics(data.decode())


def trigger(name, uri):
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"broker": "default", "subscriber": {"uri": uri}}}


# ---------------------------------------------------------------- the cases

class Case(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="outpost-detector-")
        self.procs, self.peers = [], []
        self.data = os.path.join(self.dir.name, "broker.db")
        self.broker_port = free_port()
        self.broker_url = f"http://127.0.0.1:{self.broker_port}/default/default"

    def tearDown(self):
        problems = []
        for p in self.procs:
            rc = p.stop()
            err = p.stderr()
            if rc != 0:
                problems.append(f"{p.proc.args[1]} exited {rc} after SIGTERM:\n{err[-3000:]}")
            for what in SANITIZER_REPORTS:
                if what in err:
                    problems.append(f"{p.proc.args[1]}: {what!r} in its stderr:\n{err[-3000:]}")
        for s in self.peers:
            s.stop()
        self.dir.cleanup()
        if problems:
            self.fail("\n".join(problems))

    def subscriber(self):
        s = Subscriber()
        self.peers.append(s)
        return s

    def broker(self, sub, *extra):
        cfg = os.path.join(self.dir.name, "config.json")
        with open(cfg, "w") as f:
            json.dump([trigger("all", f"http://127.0.0.1:{sub.port}/")], f)
        b = Proc(self.dir.name, "broker",
                 ["broker", "--listen", f"127.0.0.1:{self.broker_port}", "--data", self.data,
                  "--config", cfg, "--broker", "default/default", *extra])
        self.procs.append(b)
        return b

    def stop_proc(self, p):
        self.procs.remove(p)
        rc = p.stop()
        self.assertEqual(rc, 0, p.stderr()[-3000:])
        for what in SANITIZER_REPORTS:
            self.assertNotIn(what, p.stderr())
        return p

    def detector(self, url=None, *args, kernel=False, env=None):
        d = Detector(self.dir.name, url or self.broker_url, *args, kernel=kernel, env=env)
        self.procs.append(d)
        return d

    def wait_until(self, pred, what, timeout=30.0):
        return wait_for(what, pred, timeout)

    def no_drops(self, d):
        m = d.metrics()
        drops = {k: v for k, v in m.items()
                 if k.startswith("outpost_detector_dropped_events_total") and v}
        self.assertEqual(drops, {})


class PublishTest(Case):
    def test_tenant_events_reach_the_subscriber(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector()
        bodies = [{"type": "quiz.submitted", "subject": "quiz-1", "score": 7, "big": 2**63 - 1},
                  {"clicked": ["a", "b"], "nested": {"x": None}},
                  {"type": "Lab_Step-2.done", "subject": "step \u00e9 2"}]
        ids = []
        for b in bodies:
            r, data = d.post("alice", b)
            self.assertEqual(r.status, 202, data)
            ids.append(json.loads(data)["id"])
        self.assertEqual(len(set(ids)), 3)
        got = self.wait_until(lambda: len(sub.got()) >= 3 and sub.got(), "3 deliveries")
        by_id = {ev["id"]: ev for ev in got}
        self.assertEqual(sorted(by_id), sorted(ids))
        want_types = ["dev.outpost.tenant.quiz.submitted", "dev.outpost.tenant.event",
                      "dev.outpost.tenant.Lab_Step-2.done"]
        for i, b in enumerate(bodies):
            ev = by_id[ids[i]]
            self.assertEqual(ev["type"], want_types[i])
            self.assertEqual(ev["source"], "/tenants/alice")
            self.assertEqual(ev.get("subject"), b.get("subject"))
            self.assertEqual(ev["tenant"], "alice")
            self.assertEqual(ev["node"], NODE)
            self.assertEqual(ev["partitionkey"], "alice")
            self.assertEqual(ev["specversion"], "1.0")
            self.assertRegex(ev["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
            self.assertEqual(ev["datacontenttype"], "application/json")
            self.assertEqual(json.loads(ev["data"]), b)
        # 2**63-1 survives byte-exact: the data is the body as sent.
        self.assertIn(b"9223372036854775807", by_id[ids[0]]["data"])
        m = d.metrics()
        self.assertEqual(m["outpost_detector_published_events_total"], 3)
        self.assertEqual(m['outpost_detector_tenant_requests_total{result="accepted"}'], 3)
        self.no_drops(d)

    def test_tokens(self):
        sub = self.subscriber()
        self.broker(sub)
        tokens = os.path.join(self.dir.name, "tokens")
        with open(tokens, "w") as f:
            f.write("# tenant=token\n\ncarol=carol-token\r\n")
        d = self.detector(None, "--tokens-file", tokens)
        r, data = d.post("alice", {}, token="")
        self.assertEqual(r.status, 401, data)
        self.assertIn("Bearer", r.getheader("WWW-Authenticate"))
        r, _ = d.post("alice", {}, token="", headers={"Authorization": "Basic YWxpY2U6eA=="})
        self.assertEqual(r.status, 401)
        r, _ = d.post("alice", {}, token="", headers={"Authorization": "Bearer "})
        self.assertEqual(r.status, 401)
        r, _ = d.post("alice", {}, token="alice-tokenX")
        self.assertEqual(r.status, 401)
        r, _ = d.post("alice", {}, token="alice-toke")
        self.assertEqual(r.status, 401)
        r, data = d.post("alice", {}, token=TOKENS["bob"])
        self.assertEqual(r.status, 403, data)
        self.assertIn("error", json.loads(data))
        r, _ = d.post("dave", {}, token=TOKENS["bob"])  # a tenant without a token
        self.assertEqual(r.status, 403)
        r, _ = d.post("bob", {"type": "ok"})
        self.assertEqual(r.status, 202)
        r, _ = d.post("carol", {"type": "ok"}, token="carol-token")  # from --tokens-file
        self.assertEqual(r.status, 202)
        self.wait_until(lambda: len(sub.got()) >= 2, "bob's and carol's events")
        time.sleep(0.5)
        self.assertEqual(sorted(ev["source"] for ev in sub.got()),
                         ["/tenants/bob", "/tenants/carol"])
        m = d.metrics()
        self.assertEqual(m['outpost_detector_tenant_requests_total{result="unauthorized"}'], 5)
        self.assertEqual(m['outpost_detector_tenant_requests_total{result="forbidden"}'], 2)
        # The admin API wants its own token.
        r, _ = d.request("GET", "/v1/environments", headers={"Authorization": "Bearer alice-token"})
        self.assertEqual(r.status, 401)

    def test_bad_bodies(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector(None, "--max-body", "4096")
        deep = "[" * 40 + "]" * 40
        cases = [
            (b"[1, 2]", "JSON object"),
            (b'"text"', "JSON object"),
            (b"", "JSON"),
            (b"{", "JSON"),
            (b'{"a": 1} {"b": 2}', ""),
            (b'{}, "tenant": "bob"', "one JSON object"),
            (b'{"a": 01}', "JSON"),
            (b'{"a": "\xff"}', ""),
            (b'{"type": 7}', "type"),
            (b'{"type": "a..b"}', "type"),
            (b'{"type": ".a"}', "type"),
            (b'{"type": "a b"}', "type"),
            (b'{"type": "x/y"}', "type"),
            (b'{"type": "' + b"a" * 65 + b'"}', "type"),
            (b'{"type": "a", "type": "b"}', "once"),
            (b'{"subject": 3}', "subject"),
            (b'{"subject": "a\\u0001b"}', "subject"),
            (('{"d": %s}' % deep).encode(), ""),
        ]
        for body, reason in cases:
            with self.subTest(body=body[:40]):
                r, data = d.post("alice", body)
                self.assertEqual(r.status, 400, data)
                err = json.loads(data)["error"]
                self.assertIn(reason, err)
        r, data = d.post("alice", {"pad": "x" * 5000})
        self.assertEqual(r.status, 413, data)
        r, _ = d.request("GET", "/v1/tenants/alice/events")
        self.assertEqual(r.status, 405)
        r, _ = d.post("Alice", {})
        self.assertEqual(r.status, 404)
        r, data = d.post("alice", {"ok": True})
        self.assertEqual(r.status, 202)
        self.wait_until(lambda: sub.got(), "the one good event")
        time.sleep(0.5)
        self.assertEqual(len(sub.got()), 1)
        m = d.metrics()
        self.assertEqual(m['outpost_detector_tenant_requests_total{result="invalid"}'], len(cases))
        self.assertEqual(m['outpost_detector_tenant_requests_total{result="too_large"}'], 1)

    def test_policy_and_environment_bodies_are_checked(self):
        d = self.detector(self.broker_url)  # no broker needed
        bad = [
            ({"forbiddenDestinations": ["1.2.3.4"]}, "ADDRESS:PORT"),
            ({"forbiddenDestinations": ["1.2.3.4:70000"]}, "ADDRESS:PORT"),
            ({"forbiddenDestinations": ["::1:80"]}, "ADDRESS:PORT"),
            ({"forbiddenDestinations": ["host:80"]}, "ADDRESS:PORT"),
            ({"forbiddenBinaries": ["bin/sh"]}, "absolute path"),
            ({"forbiddenPaths": ["/" + "a" * 300]}, "absolute path"),
            ({"forbiddenPaths": "/etc"}, "array"),
            ({"forbiddenPaths": [3]}, "absolute path"),
            ({"forbidenPaths": ["/etc"]}, "unknown member"),
            ([], "JSON object"),
        ]
        for body, reason in bad:
            with self.subTest(body=body):
                st, err = d.admin("PUT", "/v1/policies/ns-a", body)
                self.assertEqual(st, 400, err)
                self.assertIn(reason, err["error"])
                st, err = d.admin("PUT", "/v1/environments/env-a/policy", body)
                self.assertEqual(st, 400, err)
        good = {"forbiddenBinaries": ["/bin/nc"], "forbiddenPaths": ["/etc/shadow"],
                "watchedPaths": ["/home/"],
                "forbiddenDestinations": ["10.0.0.0:22", "1.2.3.4:0", "[::1]:80"]}
        st, err = d.admin("PUT", "/v1/policies/ns-a", good)
        self.assertEqual(st, 503, err)  # valid, but --no-bpf has no kernel to put it in
        for body, reason in [({"tenant": "t", "namespace": "n"}, "cgroupId"),
                             ({"cgroupId": 0, "tenant": "t", "namespace": "n"}, "cgroupId"),
                             ({"cgroupId": 1.5, "tenant": "t", "namespace": "n"}, "cgroupId"),
                             ({"cgroupPath": "/tmp", "tenant": "t", "namespace": "n"}, "cgroup2"),
                             ({"cgroupId": 5, "tenant": "T", "namespace": "n"}, "tenant"),
                             ({"cgroupId": 5, "tenant": "t"}, "namespace"),
                             ({"cgroupId": 5, "tenant": "t", "namespace": "n", "x": 1}, "unknown")]:
            with self.subTest(env=body):
                st, err = d.admin("PUT", "/v1/environments/env-a", body)
                self.assertEqual(st, 400, err)
                self.assertIn(reason, err["error"])
        r, _ = d.request("PUT", "/v1/policies/ns-a", json.dumps(good))
        self.assertEqual(r.status, 401)  # no admin token
        st, body = d.admin("GET", "/v1/environments")
        self.assertEqual((st, body), (200, {"environments": []}))

    def test_limits_bodies_are_checked(self):
        d = self.detector(self.broker_url, "--rate-limit", "777")  # no broker needed
        self.assertEqual(d.admin("GET", "/v1/limits"), (200, {"rate_limit": 777}))
        self.assertEqual(d.metrics()["outpost_detector_rate_limit"], 777)
        rule = "integer from 0 (no limit) to 2147483647"
        bad = [
            ({"rate_limit": -1}, "rate_limit", rule),
            ({"rate_limit": 2147483648}, "rate_limit", rule),
            ({"rate_limit": 1e300}, "rate_limit", rule),
            ({"rate_limit": 1.5}, "rate_limit", rule),
            ({"rate_limit": "100"}, "rate_limit", rule),
            ({"rate_limit": None}, "rate_limit", rule),
            ({"rate_limit": True}, "rate_limit", rule),
            ({}, "rate_limit", "required"),
            ('{"rate_limit": 1, "rate_limit": 2}', "rate_limit", "once"),
            ({"rate_limit": 5, "burst": 1}, "burst", "unknown member"),
            ([5], None, "one JSON object"),
            ('{"rate_limit": 5} x', None, "one JSON object"),
            ("", None, "one JSON object"),
        ]
        for body, attr, reason in bad:
            with self.subTest(body=body):
                st, err = d.admin("PUT", "/v1/limits", body)
                self.assertEqual(st, 400, err)
                self.assertIn(reason, err["error"])
                self.assertEqual(err.get("attribute"), attr, err)
        # Valid, but --no-bpf has no kernel to put it in: the value is unchanged.
        st, err = d.admin("PUT", "/v1/limits", {"rate_limit": 0})
        self.assertEqual(st, 503, err)
        st, err = d.admin("PUT", "/v1/limits", ' {"rate_limit": 2147483647}\n')
        self.assertEqual(st, 503, err)
        self.assertEqual(d.admin("GET", "/v1/limits"), (200, {"rate_limit": 777}))
        for method in ("GET", "PUT"):
            r, _ = d.request(method, "/v1/limits", json.dumps({"rate_limit": 5}))
            self.assertEqual(r.status, 401)  # no admin token
            r, _ = d.request(method, "/v1/limits", json.dumps({"rate_limit": 5}),
                             {"Authorization": "Bearer not-the-token"})
            self.assertEqual(r.status, 401)
        st, _ = d.admin("DELETE", "/v1/limits")
        self.assertEqual(st, 405)
        st, _ = d.admin("GET", "/v1/limits/x")
        self.assertEqual(st, 404)

    def test_broker_down_events_kept_then_delivered_in_order(self):
        sub = self.subscriber()
        b = self.broker(sub)
        d = self.detector()
        r, _ = d.post("alice", {"n": -1})
        self.assertEqual(r.status, 202)
        self.wait_until(lambda: sub.got(), "the first event")
        self.stop_proc(b)
        ids = []
        for i in range(20):
            r, data = d.post("alice", {"n": i})
            self.assertEqual(r.status, 202, data)
            ids.append(json.loads(data)["id"])
        self.wait_until(lambda: d.metrics()["outpost_detector_retries_total"] >= 2, "retries")
        m = d.metrics()
        self.assertEqual(m["outpost_detector_buffer_events"], 20)
        self.broker(sub)
        self.wait_until(lambda: len(sub.got()) >= 21, "20 more deliveries", timeout=40)
        time.sleep(0.5)
        got = [ev["id"] for ev in sub.got()[1:]]
        self.assertEqual(sorted(got), sorted(ids))
        # The order they reached the broker in: its log, read in offset order.
        import sqlite3
        db = sqlite3.connect(f"file:{self.data}?mode=ro", uri=True, timeout=10)
        rows = db.execute("SELECT value FROM records WHERE topic = ? ORDER BY part, off",
                          ("knative-broker-default-default",)).fetchall()
        db.close()
        self.assertEqual([json.loads(v)["n"] for (v,) in rows], [-1] + list(range(20)))
        m = d.metrics()
        self.assertEqual(m["outpost_detector_buffer_events"], 0)
        self.assertEqual(m["outpost_detector_published_events_total"], 21)
        self.no_drops(d)

    def test_ingress_token(self):
        """A broker with --senders-file: a detector without a token keeps its
        events and retries (401); one with the token in OUTPOST_INGRESS_TOKEN
        or --ingress-token delivers, counted as the sender's."""
        senders = os.path.join(self.dir.name, "senders")
        with open(senders, "w") as f:
            f.write("detector det-secret dev.outpost.\n")
        sub = self.subscriber()
        self.broker(sub, "--senders-file", senders)
        none = self.detector()
        r, _ = none.post("alice", {"n": 0})
        self.assertEqual(r.status, 202)
        env = dict(os.environ, OUTPOST_INGRESS_TOKEN="det-secret")
        by_env = self.detector(None, env=env)
        by_flag = self.detector(None, "--ingress-token", "det-secret")
        ids = []
        for d in (by_env, by_flag):
            r, data = d.post("alice", {"n": 1})
            self.assertEqual(r.status, 202, data)
            ids.append(json.loads(data)["id"])
        got = self.wait_until(lambda: len(sub.got()) >= 2 and sub.got(), "2 deliveries")
        self.assertEqual(sorted(ev["id"] for ev in got), sorted(ids))
        self.wait_until(lambda: none.metrics()["outpost_detector_retries_total"] >= 2,
                        "the detector without a token retrying")
        self.assertEqual(none.metrics()["outpost_detector_buffer_events"], 1)
        self.assertEqual(len(sub.got()), 2, "nothing of the detector without a token")
        self.assertIn("401", none.stderr())
        text = request(self.broker_port, "GET", "/metrics")[1]
        self.assertIn('outpost_ingress_sender_events_total{sender="detector"} 2', text)

    def test_ingress_token_flags(self):
        for args, why in ((["--broker-url", self.broker_url, "--ingress-token", "a\r\nX: y"],
                           "the ingress token is visible characters only"),
                          (["--kafka", "127.0.0.1:1", "--topic", "t", "--ingress-token", "a"],
                           "--ingress-token is for --broker-url, not --kafka")):
            r = subprocess.run([OUTPOST, "detector", "--no-bpf", *args], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(why, r.stderr)

    def test_full_buffer_answers_429_and_shutdown_counts_the_rest(self):
        d = self.detector(None, "--max-events", "5", "--drain-ms", "300")  # no broker at all
        codes = [d.post("alice", {"n": i})[0] for i in range(8)]
        statuses = [r.status for r in codes]
        self.assertEqual(statuses, [202] * 5 + [429] * 3)
        self.assertEqual(codes[5].getheader("Retry-After"), "1")
        m = d.metrics()
        self.assertEqual(m['outpost_detector_tenant_requests_total{result="full"}'], 3)
        self.assertEqual(m["outpost_detector_buffer_events"], 5)
        self.stop_proc(d)
        self.assertIn("5 event(s) not delivered", d.stderr())


class FakeIngressTest(Case):
    def test_retry_after_honoured_and_order_kept(self):
        def script(n, events):
            if n == 0:
                return 503, {"Retry-After": "2"}, b'{"error":"draining"}'
            return 202, {}, b""
        fake = FakeIngress(script)
        self.peers.append(fake)
        d = self.detector(fake.url, "--batch-ms", "200")
        for i in range(5):
            self.assertEqual(d.post("alice", {"n": i})[0].status, 202)
        self.wait_until(lambda: len(fake.got()) >= 2, "the retry", timeout=20)
        reqs = fake.got()
        self.assertEqual(reqs[0][1], "application/cloudevents-batch+json")
        self.assertGreaterEqual(reqs[1][0] - reqs[0][0], 1.9, "Retry-After: 2 not honoured")
        sent = [e["data"]["n"] for e in reqs[1][2]]
        self.assertEqual(sent, [0, 1, 2, 3, 4])
        self.assertEqual([e["id"] for e in reqs[0][2]], [e["id"] for e in reqs[1][2]])
        self.assertEqual(d.metrics()["outpost_detector_retries_total"], 1)

    def test_refused_event_dropped_alone_and_counted(self):
        def script(n, events):
            bad = [i for i, e in enumerate(events) if e["data"].get("bad")]
            if bad:
                return 400, {}, json.dumps({"error": "no", "index": bad[0]}).encode()
            return 202, {}, b""
        fake = FakeIngress(script)
        self.peers.append(fake)
        d = self.detector(fake.url, "--batch-ms", "300")
        for body in ({"n": 0}, {"n": 1, "bad": True}, {"n": 2}):
            self.assertEqual(d.post("alice", body)[0].status, 202)
        self.wait_until(lambda: len(fake.got()) >= 2, "the resend")
        reqs = fake.got()
        self.assertEqual([e["data"]["n"] for e in reqs[0][2]], [0, 1, 2])
        self.assertEqual([e["data"]["n"] for e in reqs[1][2]], [0, 2])
        # The fake records a request before it answers: the detector counts the
        # batch only once the 202 is back.
        self.wait_until(lambda: d.metrics()["outpost_detector_published_events_total"] == 2,
                        "the 202 of the resend")
        m = d.metrics()
        self.assertEqual(m['outpost_detector_dropped_events_total{reason="rejected"}'], 1)
        self.assertEqual(m["outpost_detector_published_events_total"], 2)
        self.assertEqual(m["outpost_detector_buffer_events"], 0)


# ---------------------------------------------------------------- the kernel suite

def in_cgroup(cg, *argv):
    """Runs argv in cgroup cg (a shell joins it, then execs argv); returns the Popen."""
    return subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, *argv])


def run_in(cg, *argv):
    """Runs argv in cg; (pid, returncode: -9 when SIGKILL ended it)."""
    p = in_cgroup(cg, *argv)
    return p.pid, p.wait(timeout=30)


def data(ev):
    return json.loads(ev["data"])


class KernelTest(Case):
    def cgroup(self, tag):
        path = os.path.join(cgroup2_root(), f"outpost-dettest-{os.getpid()}-{tag}")
        os.mkdir(path)
        self.addCleanup(os.rmdir, path)
        return path

    def setup_env(self, d, name, cg, tenant="alice", ns="ns-a", by_id=False):
        body = {"tenant": tenant, "namespace": ns, "template": "c-lab"}
        if by_id:
            body["cgroupId"] = os.stat(cg).st_ino
        else:
            body["cgroupPath"] = cg
        st, env = d.admin("PUT", f"/v1/environments/{name}", body)
        self.assertEqual(st, 201, env)
        self.assertEqual(env["cgroupId"], os.stat(cg).st_ino)
        return env

    def execs(self, sub, env, binary=None, pid=None):
        def match(ev):
            return (ev["type"] == "dev.outpost.process.exec" and ev.get("environment") == env
                    and (binary is None or data(ev)["binary"] == binary)
                    and (pid is None or data(ev)["pid"] == pid))
        return sub.got(match)

    def test_exec_attributed_and_policies_at_run_time(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector(None, kernel=True)
        self.assertTrue(any(line.startswith("detector hooks: tp_btf") for line in d.out), d.out)
        cg1, cg2 = self.cgroup("one"), self.cgroup("two")
        first = self.setup_env(d, "env-one", cg1)
        st, again = d.admin("PUT", "/v1/environments/env-one",
                            {"cgroupPath": cg1, "tenant": "alice", "namespace": "ns-a"})
        self.assertEqual((st, again["envId"]), (200, first["envId"]))  # replaced, same id
        st, err = d.admin("PUT", "/v1/environments/env-dup",
                          {"cgroupPath": cg1, "tenant": "alice", "namespace": "ns-a"})
        self.assertEqual(st, 409, err)
        pid, rc = run_in(cg1, "/bin/true")
        self.assertEqual(rc, 0)
        ev = self.wait_until(lambda: self.execs(sub, "env-one", "/bin/true", pid), "the exec")[0]
        self.assertEqual(ev["source"], f"/nodes/{NODE}/environments/env-one")
        self.assertEqual((ev["tenant"], ev["namespace"], ev["node"], ev["partitionkey"]),
                         ("alice", "ns-a", NODE, "env-one"))
        self.assertEqual((ev["action"], ev["severity"], ev["subject"]),
                         ("none", "info", "/bin/true"))
        # An unwatched process is not reported.
        outside = subprocess.Popen(["/bin/echo", "outside"], stdout=subprocess.DEVNULL)
        self.assertEqual(outside.wait(timeout=30), 0)

        # An environment's own policy, put at run time.
        st, body = d.admin("PUT", "/v1/environments/env-one/policy",
                           {"forbiddenBinaries": ["/bin/touch"]})
        self.assertEqual(st, 200, body)
        made = os.path.join(self.dir.name, "made")
        pid, rc = run_in(cg1, "/bin/touch", made)
        self.assertEqual(rc, -signal.SIGKILL)
        self.assertFalse(os.path.exists(made), "touch ran")
        ev = self.wait_until(lambda: self.execs(sub, "env-one", "/bin/touch", pid), "the kill")[0]
        self.assertEqual((ev["action"], ev["severity"]), ("killed", "critical"))
        self.assertEqual(d.admin("GET", "/v1/environments/env-one/policy")[1]["source"], "own")

        # A namespace's policy reaches an environment watched after it.
        st, body = d.admin("PUT", "/v1/policies/ns-b", {"forbiddenBinaries": ["/bin/true"]})
        self.assertEqual((st, body["environments"]), (200, 0))
        self.setup_env(d, "env-two", cg2, tenant="bob", ns="ns-b", by_id=True)
        pid2, rc = run_in(cg2, "/bin/true")
        self.assertEqual(rc, -signal.SIGKILL)
        ev = self.wait_until(lambda: self.execs(sub, "env-two", "/bin/true", pid2), "kill 2")[0]
        self.assertEqual((ev["action"], ev["tenant"], ev["namespace"]), ("killed", "bob", "ns-b"))
        self.assertEqual(run_in(cg1, "/bin/true")[1], 0)  # ns-a is not ns-b
        st, _ = d.admin("DELETE", "/v1/policies/ns-b")
        self.assertEqual(st, 204)
        self.assertEqual(run_in(cg2, "/bin/true")[1], 0)
        st, envs = d.admin("GET", "/v1/environments")
        self.assertEqual(sorted((e["name"], e["policy"]) for e in envs["environments"]),
                         [("env-one", "own"), ("env-two", "none")])

        # Unwatched again: nothing more from cg2.
        self.assertEqual(d.admin("DELETE", "/v1/environments/env-two")[0], 204)
        self.assertEqual(d.admin("DELETE", "/v1/environments/env-two")[0], 404)
        pid3, rc = run_in(cg2, "/bin/true")
        marker, _ = run_in(cg1, "/bin/true")
        self.wait_until(lambda: self.execs(sub, "env-one", "/bin/true", marker), "the marker")
        time.sleep(0.3)
        self.assertEqual([ev for ev in sub.got() if data(ev).get("pid") in (pid3, outside.pid)], [])
        self.no_drops(d)

    def test_full_buffer_drops_counted_and_reported(self):
        sub = self.subscriber()
        b = self.broker(sub)
        d = self.detector(None, "--max-events", "10", "--drops-interval", "300", kernel=True)
        cg = self.cgroup("flood")
        self.setup_env(d, "env-flood", cg)
        self.stop_proc(b)
        _, rc = run_in(cg, "sh", "-c", 'i=0; while [ $i -lt 30 ]; do /bin/true; i=$((i+1)); done')
        self.assertEqual(rc, 0)

        def kernel_read(m):
            return sum(v for k, v in m.items()
                       if k.startswith("outpost_detector_kernel_events_total"))

        last = [None]

        def settled():
            m = d.metrics()
            full = m['outpost_detector_dropped_events_total{reason="buffer_full"}']
            # Every event read is buffered or dropped; 30 loops make 90 events and more.
            read = kernel_read(m)
            # And nothing more for 0.5 s: a straggler read after the snapshot
            # would be one more drop than the snapshot says (CI saw 82 != 81).
            if last[0] is None or last[0][0] != read:
                last[0] = (read, time.monotonic())
            quiet = time.monotonic() - last[0][1] >= 0.5
            return read >= 90 and read == full + m["outpost_detector_buffer_events"] and quiet and m
        m = self.wait_until(settled, "the flood read")
        read = kernel_read(m)
        full = m['outpost_detector_dropped_events_total{reason="buffer_full"}']
        self.assertEqual(m["outpost_detector_buffer_events"], 10)
        self.assertGreater(full, 0)
        self.broker(sub)

        def drops_event():
            evs = sub.got(lambda ev: ev["type"] == "dev.outpost.detector.drops")
            return evs and evs[-1]
        rep = self.wait_until(drops_event, "the drops event", timeout=40)
        self.assertEqual(rep["source"], f"/nodes/{NODE}/detector")
        self.assertEqual(data(rep)["publisher"]["buffer_full"], full)
        self.assertEqual(data(rep)["ring"]["total"], 0)
        # The trigger delivers unordered: the drops event may overtake some.
        def kernel():
            return sub.got(lambda ev: ev.get("environment") == "env-flood")
        self.wait_until(lambda: len(kernel()) >= read - full, "the buffered events")
        time.sleep(0.5)
        self.assertEqual(len(kernel()), read - full)
        self.assertEqual(d.metrics()['outpost_detector_dropped_events_total{reason="buffer_full"}'],
                         full)

    def test_ring_overflow_counted_and_reported(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector(None, "--ring-bytes", "4096", "--drops-interval", "300", kernel=True)
        cg = self.cgroup("ring")
        self.setup_env(d, "env-ring", cg)
        forks = 200
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            pid, rc = run_in(cg, "sh", "-c",
                             f'i=0; while [ $i -lt {forks} ]; do ( : ); i=$((i+1)); done')
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        self.assertEqual(rc, 0)
        m = d.metrics()
        dropped = m['outpost_detector_ring_drops_total{kind="fork"}']
        self.assertGreater(dropped, 0)

        def fork_events():
            return sub.got(lambda ev: ev["type"] == "dev.outpost.process.fork"
                           and ev.get("environment") == "env-ring" and data(ev)["pid"] == pid)
        self.wait_until(lambda: len(fork_events()) + dropped >= forks, "the forks", timeout=40)
        time.sleep(0.5)
        self.assertEqual(len(fork_events()) + dropped, forks)

        def drops_event():
            evs = sub.got(lambda ev: ev["type"] == "dev.outpost.detector.drops")
            return evs and data(evs[-1])["ring"]["fork"] == dropped and evs[-1]
        rep = self.wait_until(drops_event, "a drops event with the fork drops")
        ring = data(rep)["ring"]
        self.assertEqual(ring["total"], sum(v for k, v in ring.items() if k != "total"))
        for kind in ("fork", "exit", "exec"):
            metric = f'outpost_detector_ring_drops_total{{kind="{kind}"}}'
            self.assertEqual(ring[kind], d.metrics()[metric])

    def test_fork_rate_alarm_once_per_window(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector(None, "--forkrate-threshold", "50", "--forkrate-window", "1000",
                          kernel=True)
        bomb, slow = self.cgroup("bomb"), self.cgroup("slow")
        self.setup_env(d, "env-bomb", bomb)
        self.setup_env(d, "env-slow", slow, tenant="bob")
        forks = 300
        t0 = time.monotonic()
        pid, rc = run_in(bomb, "sh", "-c",
                         f'i=0; while [ $i -lt {forks} ]; do ( : ); i=$((i+1)); done')
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0)
        # 20 forks over 2 s: 10/s at most, far below the threshold.
        _, rc = run_in(slow, "sh", "-c", 'i=0; while [ $i -lt 20 ]; do ( : ); sleep 0.1; '
                                         'i=$((i+1)); done')
        self.assertEqual(rc, 0)

        def forkrate(env):
            return sub.got(lambda ev: ev["type"] == "dev.outpost.process.forkrate"
                           and ev.get("environment") == env)
        # Every fork read from the ring (the slow ones too): the alarms are
        # all raised, and /metrics says how many to wait for.
        def all_read():
            m = d.metrics()
            return m['outpost_detector_kernel_events_total{kind="fork"}'] >= forks + 20 and m
        raised = self.wait_until(all_read, "the forks read")["outpost_detector_forkrate_events_total"]
        self.assertGreaterEqual(raised, 1)
        self.wait_until(lambda: len(forkrate("env-bomb")) >= raised, "the forkrate events")
        time.sleep(0.3)
        alarms = forkrate("env-bomb")
        # One per window while the burst lasts, not one per fork.
        self.assertLessEqual(len(alarms), int(elapsed) + 1, (elapsed, len(alarms)))
        ev = alarms[0]
        self.assertEqual(ev["source"], f"/nodes/{NODE}/environments/env-bomb")
        self.assertEqual((ev["severity"], ev["tenant"], ev["partitionkey"], ev["subject"]),
                         ("critical", "alice", "env-bomb", "env-bomb"))
        d0 = data(ev)
        self.assertGreater(d0["rate"], 50)
        self.assertEqual((d0["window_ms"], d0["threshold"]), (1000, 50))
        self.assertEqual(forkrate("env-slow"), [])
        m = d.metrics()
        self.assertEqual(m["outpost_detector_forkrate_events_total"], len(alarms))
        self.no_drops(d)


    def test_flood_throttled_and_reported_per_environment(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector(None, "--rate-limit", "200", "--drops-interval", "300", kernel=True)
        flood, quiet = self.cgroup("thr-flood"), self.cgroup("thr-quiet")
        self.setup_env(d, "env-flood", flood)
        self.setup_env(d, "env-quiet", quiet, tenant="bob", ns="ns-b")
        calls = 5000
        # setuid(0) as root: a no-op the kernel reports; Python's own start-up
        # reports no setuid.
        f = in_cgroup(flood, sys.executable, "-c",
                      f"import os\nfor _ in range({calls}): os.setuid(0)")
        quiet_pids = [run_in(quiet, "/bin/true") for _ in range(3)]
        self.assertEqual(f.wait(timeout=60), 0)
        self.assertEqual([rc for _, rc in quiet_pids], [0, 0, 0])

        def setuid_settled():
            m = d.metrics()
            n = (m['outpost_detector_kernel_events_total{kind="setuid"}']
                 + m['outpost_detector_throttled_events_total{kind="setuid"}']
                 + m['outpost_detector_ring_drops_total{kind="setuid"}'])
            return n == calls and m
        m = self.wait_until(setuid_settled, "read + throttled + ring drops == calls")
        throttled = m['outpost_detector_throttled_events_total{kind="setuid"}']
        read = m['outpost_detector_kernel_events_total{kind="setuid"}']
        self.assertGreater(throttled, 0)
        self.assertLessEqual(read, 200 * 3)  # a few seconds' budget at most
        # The quiet environment lost nothing.
        for pid, _ in quiet_pids:
            self.wait_until(lambda: self.execs(sub, "env-quiet", "/bin/true", pid), "quiet exec")

        def throttled_events(env):
            return sub.got(lambda ev: ev["type"] == "dev.outpost.detector.throttled"
                           and ev.get("environment") == env)

        def all_reported():
            evs = throttled_events("env-flood")
            return (sum(data(ev)["kinds"].get("setuid", 0) for ev in evs) == throttled
                    and evs)
        evs = self.wait_until(all_reported, "throttled events adding up to the metric")
        ev = evs[0]
        self.assertEqual(ev["source"], f"/nodes/{NODE}/environments/env-flood")
        self.assertEqual((ev["tenant"], ev["namespace"], ev["node"], ev["partitionkey"],
                          ev["subject"], ev["severity"], ev["action"]),
                         ("alice", "ns-a", NODE, "env-flood", "env-flood", "warning", "none"))
        for e in evs:
            body = data(e)
            self.assertEqual((body["limit"], body["interval_ms"]), (200, 300))
            self.assertEqual(body["throttled"], sum(body["kinds"].values()))
        self.assertEqual(throttled_events("env-quiet"), [])
        self.assertEqual(d.metrics()["outpost_detector_throttled_reports_total"],
                         len(throttled_events("env-flood")))

    def test_rate_limit_changed_at_run_time(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector(None, "--rate-limit", "0", kernel=True)
        flood = self.cgroup("thr-runtime")
        self.setup_env(d, "env-rt", flood)
        calls = 3000

        def setuid_flood():
            f = in_cgroup(flood, sys.executable, "-c",
                          f"import os\nfor _ in range({calls}): os.setuid(0)")
            self.assertEqual(f.wait(timeout=60), 0)

        def counts(want):
            def settled():
                m = d.metrics()
                got = (m['outpost_detector_kernel_events_total{kind="setuid"}'],
                       m['outpost_detector_throttled_events_total{kind="setuid"}'],
                       m['outpost_detector_ring_drops_total{kind="setuid"}'])
                return sum(got) == want and got
            return self.wait_until(settled, f"read + throttled + ring drops == {want}")

        # Off: every call is reported.
        setuid_flood()
        read, throttled, _ = counts(calls)
        self.assertEqual(throttled, 0)
        # 100 a second from now on, without a restart: the flood is cut.
        self.assertEqual(d.admin("PUT", "/v1/limits", {"rate_limit": 100}),
                         (200, {"rate_limit": 100}))
        self.assertEqual(d.admin("GET", "/v1/limits"), (200, {"rate_limit": 100}))
        self.assertEqual(d.metrics()["outpost_detector_rate_limit"], 100)
        setuid_flood()
        read2, throttled2, _ = counts(2 * calls)
        self.assertGreater(throttled2, calls // 2)
        self.assertLessEqual(read2 - read, 100 * 3)  # a few seconds' budget at most
        # Off again: nothing more is throttled.
        self.assertEqual(d.admin("PUT", "/v1/limits", {"rate_limit": 0}),
                         (200, {"rate_limit": 0}))
        setuid_flood()
        _, throttled3, _ = counts(3 * calls)
        self.assertEqual(throttled3, throttled2)

    def test_throttled_fork_bomb_still_raises_forkrate(self):
        sub = self.subscriber()
        self.broker(sub)
        d = self.detector(None, "--rate-limit", "20", "--forkrate-threshold", "50", kernel=True)
        bomb = self.cgroup("thr-bomb")
        self.setup_env(d, "env-bomb", bomb)
        forks = 300
        _, rc = run_in(bomb, "sh", "-c",
                       f'i=0; while [ $i -lt {forks} ]; do ( : ); i=$((i+1)); done')
        self.assertEqual(rc, 0)

        def counted():
            m = d.metrics()
            n = (m['outpost_detector_kernel_events_total{kind="fork"}']
                 + m['outpost_detector_throttled_events_total{kind="fork"}'])
            return n >= forks and m
        m = self.wait_until(counted, "the forks read or throttled")
        # Reported forks alone stay under the threshold: 20 events a second,
        # exits included.
        self.assertLessEqual(m['outpost_detector_kernel_events_total{kind="fork"}'], 50)

        def alarm():
            return sub.got(lambda ev: ev["type"] == "dev.outpost.process.forkrate"
                           and ev.get("environment") == "env-bomb")
        ev = self.wait_until(alarm, "the forkrate alarm")[0]
        self.assertGreater(data(ev)["rate"], 50)
        self.assertEqual(ev["source"], f"/nodes/{NODE}/environments/env-bomb")


# ---------------------------------------------------------------- the Kafka suite

KAFKA_MOCK = None
KAFKA_TOPIC = "knative-broker-default-default"


class KafkaTest(Case):
    def setUp(self):
        super().setUp()
        import test_kafka  # tests/broker: the kafka_mock wrapper and kcat reader
        test_kafka.KAFKA_MOCK = KAFKA_MOCK
        self.kcat = test_kafka.kcat
        self.mock = test_kafka.Mock(3)
        self.addCleanup(self.mock.stop)
        self.mock.do(f"topic {KAFKA_TOPIC} 3 3")

    def kafka_detector(self, *args):
        d = Detector(self.dir.name, None, "--kafka", self.mock.bootstrap, "--topic", KAFKA_TOPIC,
                     *args)
        self.procs.append(d)
        return d

    def records(self, want):
        def enough():
            recs = self.kcat(self.mock.bootstrap, KAFKA_TOPIC)
            return len(recs) >= want and recs
        return self.wait_until(enough, f"{want} records in {KAFKA_TOPIC}", timeout=60)

    def test_tenant_events_read_back_by_kcat(self):
        d = self.kafka_detector()
        sent = []
        for i, tenant in enumerate(["alice", "bob", "alice", "alice", "bob"]):
            body = {"type": "quiz.submitted", "subject": f"q-{i}", "n": i}
            r, out = d.post(tenant, body)
            self.assertEqual(r.status, 202, out)
            sent.append((json.loads(out)["id"], tenant, body))
        recs = {m["hdrs"]["ce_id"]: m for m in self.records(len(sent))}
        self.assertEqual(sorted(recs), sorted(i for i, _, _ in sent))
        for id_, tenant, body in sent:
            m = recs[id_]
            self.assertEqual(m["key"], tenant)  # partitionkey
            self.assertEqual(json.loads(m["payload"]), body)
            h = m["hdrs"]
            self.assertEqual((h["ce_specversion"], h["ce_type"], h["ce_source"], h["ce_subject"]),
                             ("1.0", "dev.outpost.tenant.quiz.submitted", f"/tenants/{tenant}",
                              body["subject"]))
            self.assertEqual((h["ce_tenant"], h["ce_node"], h["ce_partitionkey"]),
                             (tenant, NODE, tenant))
            self.assertEqual(h["content-type"], "application/json")
            self.assertRegex(h["ce_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
        # One key's records share a partition, in the order they were sent.
        for tenant in ("alice", "bob"):
            mine = [m for m in recs.values() if m["key"] == tenant]
            self.assertEqual(len({m["partition"] for m in mine}), 1)
            self.assertEqual([m["hdrs"]["ce_id"] for m in sorted(mine, key=lambda m: m["offset"])],
                             [i for i, t, _ in sent if t == tenant])
        m = self.wait_until(lambda: (lambda m: m["outpost_detector_published_events_total"]
                                     == len(sent) and m)(d.metrics()), "published == 5")
        self.assertEqual(m["outpost_detector_buffer_events"], 0)
        self.no_drops(d)

    def test_kafka_down_events_kept_then_delivered(self):
        d = self.kafka_detector()
        r, out = d.post("alice", {"n": -1})
        self.assertEqual(r.status, 202, out)
        self.records(1)
        for b in (1, 2, 3):
            self.mock.do(f"down {b}")
        ids = []
        for i in range(20):
            r, out = d.post("alice", {"n": i})
            self.assertEqual(r.status, 202, out)
            ids.append(json.loads(out)["id"])
        # Not acknowledged while the cluster is down: kept, and retried once
        # the append times out (the delivery timeout: 10 s).
        self.wait_until(lambda: d.metrics()["outpost_detector_retries_total"] > 0,
                        "a retry", timeout=30)
        self.assertGreater(d.metrics()["outpost_detector_buffer_events"], 0)
        for b in (1, 2, 3):
            self.mock.do(f"up {b}")
        self.wait_until(lambda: d.metrics()["outpost_detector_buffer_events"] == 0,
                        "the buffer drained", timeout=60)
        recs = self.records(21)
        got = [m["hdrs"]["ce_id"] for m in sorted(recs, key=lambda m: m["offset"])
               if m["hdrs"]["ce_id"] in ids]
        # At least once: a retried append may store a record twice; never
        # out of order, never missing.
        self.assertEqual(sorted(set(got)), sorted(ids))
        first = [i for n, i in enumerate(got) if i not in got[:n]]
        self.assertEqual(first, ids)
        self.assertEqual(d.metrics()["outpost_detector_published_events_total"], 21)
        self.no_drops(d)


def main():
    global OUTPOST, KAFKA_MOCK
    if len(sys.argv) < 3 or sys.argv[2] not in ("publish", "kernel", "kafka"):
        sys.exit(__doc__)
    OUTPOST = os.path.abspath(sys.argv[1])
    suite = sys.argv[2]
    if suite == "kafka":
        if len(sys.argv) < 4:
            sys.exit(__doc__)
        KAFKA_MOCK = os.path.abspath(sys.argv[3])
        del sys.argv[3]
    if suite == "kafka":
        names = ["KafkaTest"]
    elif suite == "kernel":
        why = ebpf_skip_reason()
        if why:
            print(f"SKIP: {why}", file=sys.stderr)
            sys.exit(77)
        names = ["KernelTest"]
    else:
        names = ["PublishTest", "FakeIngressTest"]
    args = sys.argv[3:] or names
    unittest.main(module=__name__, argv=[sys.argv[0], "-v", *args])


if __name__ == "__main__":
    main()
