#!/usr/bin/env python3
"""Integration tests of `outpost broker`: real HTTP on 127.0.0.1, the real
embedded log on disk. Every answer the ingress promises (202, 400 with the
attribute, 404, 405, OPTIONS, 413, 415, 431, TTL), keep-alive, the admin
API, /metrics, and the crash test: concurrent clients, `kill -9` mid-way,
restart, and every event that got a 202 is in the log exactly as posted.

With OUTPOST_TEST_TLS=1 every broker serves HTTPS (--tls-cert, --tls-key,
a CA made with openssl) and every request of the suite goes over TLS.

Usage: [OUTPOST_BROKER_ARGS=...] [OUTPOST_TEST_TLS=1] test_ingress.py /path/to/outpost
"""
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import (binary_headers, free_port, make_ca, parse_metrics,  # noqa: E402
                          server_cert, unpack_headers, wait_for)

OUTPOST = None
# More flags for every broker the tests start: CTest runs the suite once per
# HTTP thread model (OUTPOST_BROKER_ARGS=--thread-per-connection).
EXTRA = os.environ.get("OUTPOST_BROKER_ARGS", "").split()
# With OUTPOST_TEST_TLS: the client side of HTTPS (set in __main__).
TLS = None


class Broker:
    """One `outpost broker` process on a free port and a data file."""

    def __init__(self, data, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [OUTPOST, "broker", "--listen", f"127.0.0.1:{self.port}", "--data", data, *extra,
             *EXTRA],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        while line and not line.startswith("listening on"):
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("outpost broker did not start")

    def conn(self):
        if TLS:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=TLS)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc.stdout.close()
        return self.proc.returncode


def records(path):
    db = sqlite3.connect(path)
    rows = db.execute("SELECT topic, part, off, key, headers, value FROM records ORDER BY part, off")
    out = [(t, p, o, k, unpack_headers(h), v) for t, p, o, k, h, v in rows]
    db.close()
    return out


class IngressTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.dir.name, "broker.db")
        self.b = Broker(self.data, "--max-headers", "40")

    def tearDown(self):
        self.assertEqual(self.b.stop(), 0, "clean exit on SIGTERM")
        self.dir.cleanup()

    def test_binary_202_and_stored_as_kafka_binary(self):
        r, body = self.b.request("POST", "/default/default", b'{"a":1}',
                                 binary_headers(1, **{"ce-subject": "Euro%20%E2%82%AC"}))
        self.assertEqual(r.status, 202, body)
        (topic, part, off, key, h, value), = records(self.data)
        self.assertEqual(topic, "knative-broker-default-default")
        self.assertEqual(off, 0)
        self.assertEqual(value, b'{"a":1}')
        self.assertEqual(h["ce_id"], "1")
        self.assertEqual(h["ce_subject"], "Euro €")  # Kafka headers are raw UTF-8
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(h["ce_knativebrokerttl"], "255")
        self.assertRegex(h["ce_knativearrivaltime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

    def test_structured_and_partition_key(self):
        ev = {"specversion": "1.0", "id": "s1", "source": "/s", "type": "t",
              "partitionkey": "env-7", "knativebrokerttl": 9, "data": {"n": 12345678901234567890}}
        r, body = self.b.request("POST", "/default/default", json.dumps(ev),
                                 {"Content-Type": "application/cloudevents+json; charset=utf-8"})
        self.assertEqual(r.status, 202, body)
        (_, _, _, key, h, value), = records(self.data)
        self.assertEqual(key, b"env-7")
        self.assertEqual(h["ce_knativebrokerttl"], "9")  # kept, not reset
        self.assertEqual(value, b'{"n": 12345678901234567890}')  # data byte-exact

    def test_batch_is_all_or_nothing(self):
        good = {"specversion": "1.0", "id": "b1", "source": "/s", "type": "t"}
        bad = dict(good, id="b2", time="yesterday")
        r, body = self.b.request("POST", "/default/default", json.dumps([good, bad]),
                                 {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(r.status, 400)
        err = json.loads(body)
        self.assertEqual((err["attribute"], err["index"]), ("time", 1))
        self.assertEqual(records(self.data), [])
        r, _ = self.b.request("POST", "/default/default", json.dumps([good, dict(good, id="b3")]),
                              {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(r.status, 202)
        self.assertEqual([h["ce_id"] for *_, h, _ in records(self.data)], ["b1", "b3"])

    def test_refusals(self):
        cases = [
            ("missing type", "POST", "/default/default", b"", {k: v for k, v in binary_headers(1).items() if k != "ce-type"}, 400, "type"),
            ("bad percent", "POST", "/default/default", b"", binary_headers(1, **{"ce-subject": "%C0%A0"}), 400, "subject"),
            ("specversion", "POST", "/default/default", b"", binary_headers(1, **{"ce-specversion": "0.3"}), 400, "specversion"),
            ("ttl", "POST", "/default/default", b"", binary_headers(1, **{"ce-knativebrokerttl": "0"}), 400, "knativebrokerttl"),
            ("unknown broker", "POST", "/default/nope", b"", binary_headers(1), 404, None),
            ("implied path", "POST", "/a/b/c", b"", binary_headers(1), 404, None),
            ("method", "PUT", "/default/default", b"", binary_headers(1), 405, None),
            ("format", "POST", "/default/default", b"x", {"Content-Type": "application/cloudevents+avro"}, 415, "content-type"),
            ("charset", "POST", "/default/default", b"{}", {"Content-Type": "application/cloudevents+json; charset=latin1"}, 415, "content-type"),
            ("too large", "POST", "/default/default", b"x" * (1024 * 1024 + 1), binary_headers(1), 413, None),
            ("headers", "POST", "/default/default", b"", dict(binary_headers(1), **{f"x-h{i}": "v" for i in range(50)}), 431, None),
            ("empty batch", "POST", "/default/default", b"[]", {"Content-Type": "application/cloudevents-batch+json"}, 400, None),
        ]
        for name, method, path, body, headers, status, attr in cases:
            with self.subTest(name):
                r, data = self.b.request(method, path, body, headers)
                self.assertEqual(r.status, status, data)
                err = json.loads(data)
                self.assertTrue(err["error"])
                if attr:
                    self.assertEqual(err["attribute"], attr)
                if status == 405:
                    self.assertEqual(r.getheader("Allow"), "POST, OPTIONS")
        self.assertEqual(records(self.data), [], "nothing refused reached the log")
        r, metrics = self.b.request("GET", "/metrics")
        text = metrics.decode()
        for reason, n in [("invalid", 4), ("ttl_expired", 1), ("unknown_broker", 2),
                          ("method_not_allowed", 1), ("unsupported_media_type", 2),
                          ("too_large", 1), ("too_many_headers", 1)]:
            self.assertIn(f'outpost_ingress_requests_rejected_total{{reason="{reason}"}} {n}\n', text)

    def test_hybrid_pools(self):
        # With --hybrid --poll-connections 2 (the test_ingress_hybrid run),
        # two connections are the poll pool's and the rest the epoll pool's;
        # events are accepted on both.
        if "--hybrid" not in EXTRA:
            self.skipTest("not the --hybrid run")
        conns = []
        for i in range(4):
            c = self.b.conn()
            c.request("POST", "/default/default", body=b"{}", headers=binary_headers(1000 + i))
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 202)
            conns.append(c)
        for i, c in enumerate(conns):
            c.request("POST", "/default/default", body=b"{}", headers=binary_headers(2000 + i))
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 202)
        _, metrics = self.b.request("GET", "/metrics")
        text = metrics.decode()
        self.assertIn('outpost_ingress_connections{pool="poll"} 2\n', text)
        epoll = re.search(r'outpost_ingress_connections\{pool="epoll"\} (\d+)', text)
        self.assertIsNotNone(epoll)
        self.assertGreaterEqual(int(epoll.group(1)), 2)
        for c in conns:
            c.close()
        self.assertEqual(len(records(self.data)), 8)

    def test_log_metrics(self):
        # One request at a time: each waits for its own group commit, so
        # the log counts a group per request.
        c = self.b.conn()
        for i in range(20):
            c.request("POST", "/default/default", body=b"{}", headers=binary_headers(3000 + i))
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 202)
        c.close()
        batch = [{"specversion": "1.0", "id": f"m{i}", "source": "/s", "type": "t"}
                 for i in range(3)]
        r, body = self.b.request("POST", "/default/default", json.dumps(batch),
                                 {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(r.status, 202, body)

        def disk():
            return os.path.getsize(self.data) + os.path.getsize(self.data + "-wal")

        # The files only grow (a retention pass every 5 s may write a page):
        # the gauge read between two sizes lies between them.
        before = disk()
        _, metrics = self.b.request("GET", "/metrics")
        after = disk()
        m = parse_metrics(metrics.decode())
        self.assertEqual(m['outpost_log_commits_total{result="ok"}'], 21)
        self.assertEqual(m['outpost_log_commits_total{result="failed"}'], 0)
        self.assertEqual(m["outpost_log_appends_total"], 21)
        self.assertEqual(m["outpost_log_records_total"], 23)
        self.assertEqual(m["outpost_log_commit_duration_seconds_count"], 21)
        self.assertEqual(m['outpost_log_commit_duration_seconds_bucket{le="+Inf"}'], 21)
        self.assertTrue(0 < before <= int(m["outpost_log_disk_bytes"]) <= after,
                        (before, m["outpost_log_disk_bytes"], after))

    def test_options_handshake(self):
        r, _ = self.b.request("OPTIONS", "/default/default", None,
                              {"WebHook-Request-Origin": "eventemitter.example.com"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("WebHook-Allowed-Origin"), "eventemitter.example.com")
        self.assertEqual(r.getheader("Allow"), "POST, OPTIONS")

    def test_keep_alive(self):
        c = self.b.conn()
        for i in range(200):
            c.request("POST", "/default/default", body=b"{}", headers=binary_headers(i))
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 202)
        c.close()
        self.assertEqual(len(records(self.data)), 200)

    def test_admin_api_and_health(self):
        r, _ = self.b.request("PUT", "/v1/brokers/team-a/main")
        self.assertEqual(r.status, 201)
        r, _ = self.b.request("POST", "/team-a/main", b"", binary_headers(1))
        self.assertEqual(r.status, 202)
        r, body = self.b.request("GET", "/v1/brokers")
        names = {(x["namespace"], x["name"]) for x in json.loads(body)["brokers"]}
        self.assertEqual(names, {("default", "default"), ("team-a", "main")})
        r, _ = self.b.request("PUT", "/v1/brokers/Team_A/x")
        self.assertEqual(r.status, 400)
        r, _ = self.b.request("DELETE", "/v1/brokers/team-a/main")
        self.assertEqual(r.status, 204)
        r, _ = self.b.request("POST", "/team-a/main", b"", binary_headers(2))
        self.assertEqual(r.status, 404)
        for path in ("/healthz", "/readyz"):
            r, _ = self.b.request("GET", path)
            self.assertEqual(r.status, 200)


CONFIG = """\
# Brokers as Knative declares them; the Trigger is for the triggers, skipped here.
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: orders
  namespace: team-a
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: audit
  namespace: team-a
  annotations:
    kafka.eventing.knative.dev/external.topic: shared-audit
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t1, namespace: team-a}
spec: {broker: orders, subscriber: {uri: "http://127.0.0.1:1/"}}
"""


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.dir.name, "broker.db")
        self.config = os.path.join(self.dir.name, "outpost.yaml")

    def tearDown(self):
        self.dir.cleanup()

    def test_brokers_from_a_config_file(self):
        with open(self.config, "w") as f:
            f.write(CONFIG)
        b = Broker(self.data, "--config", self.config)
        try:
            r, body = b.request("GET", "/v1/brokers")
            got = sorted((x["namespace"], x["name"], x["topic"]) for x in json.loads(body)["brokers"])
            self.assertEqual(got, [("team-a", "audit", "shared-audit"),
                                   ("team-a", "orders", "knative-broker-team-a-orders")])
            for path in ("/team-a/orders", "/team-a/audit"):
                r, body = b.request("POST", path, b"{}", binary_headers(path))
                self.assertEqual(r.status, 202, body)
            # No implied default broker when the file declares some.
            r, _ = b.request("POST", "/default/default", b"{}", binary_headers(1))
            self.assertEqual(r.status, 404)
        finally:
            self.assertEqual(b.stop(), 0)
        # The trigger's subscriber does not exist: its events may have been
        # dead-lettered into <topic>-dead-letter by now, as they should.
        self.assertEqual(sorted({t for (t, *_rest) in records(self.data)
                                 if not t.endswith("-dead-letter")}),
                         ["knative-broker-team-a-orders", "shared-audit"])

    def test_bad_config_refused_with_its_place(self):
        cases = [
            ("kind: Broker\napiVersion: eventing.knative.dev/v1\nmetadata: {name: a, name: b}\n",
             "line 3"),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "ConfigMap"),
            ("apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {namespace: x}\n",
             "metadata.name"),
            ("apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: Bad_Name}\n",
             "Bad_Name"),
        ]
        for text, want in cases:
            with open(self.config, "w") as f:
                f.write(text)
            p = subprocess.run([OUTPOST, "broker", "--listen", "127.0.0.1:0", "--data", self.data,
                                "--config", self.config], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 2, (text, p.stderr))
            self.assertIn(want, p.stderr, text)
        p = subprocess.run([OUTPOST, "broker", "--config", "/nonexistent.yaml"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("/nonexistent.yaml", p.stderr)

    def test_config_is_not_a_state_file(self):
        """The state files are rewritten by the admin API: a --config that is
        one of them (by default beside --data; as named, through another
        path, or existing already) stops the start before anything is read
        or written, and the file is left as it was."""
        d = self.dir.name
        with open(self.config, "w") as f:
            f.write("apiVersion: eventing.knative.dev/v1\nkind: Broker\n"
                    "metadata: {namespace: a, name: b}\n")
        cases = [
            (["--config", os.path.join(d, "triggers.json")], "--triggers-state"),
            (["--config", os.path.join(d, "sub", "..", "brokers.json")], "--brokers-state"),
            (["--config", self.config, "--triggers-state", self.config], "--triggers-state"),
            (["--config", self.config, "--brokers-state", os.path.join(d, ".", "outpost.yaml")],
             "--brokers-state"),
            (["--triggers-state", os.path.join(d, "s.json"), "--brokers-state",
              os.path.join(d, "s.json")], "the same file"),
        ]
        os.mkdir(os.path.join(d, "sub"))
        with open(os.path.join(d, "triggers.json"), "w") as f:
            f.write("[]")
        for args, want in cases:
            with open(self.config, "rb") as f:
                before = f.read()
            p = subprocess.run([OUTPOST, "broker", "--listen", "127.0.0.1:0", "--data", self.data,
                                *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
            self.assertIn(want, p.stderr, args)
            with open(self.config, "rb") as f:
                self.assertEqual(f.read(), before)
        self.assertFalse(os.path.exists(self.data), "nothing started")
        # Beside one another, as the chart and `outpost run` place them: fine.
        b = Broker(self.data, "--config", self.config,
                   "--triggers-state", os.path.join(d, "triggers.json"))
        self.assertEqual(b.stop(), 0)

    def test_api_brokers_kept_across_restarts(self):
        """A broker declared through PUT /v1/brokers is there after a restart
        (brokers.json beside --data); one DELETEd is not; the configuration's
        brokers are the configuration's, not written to the file."""
        state = os.path.join(self.dir.name, "brokers.json")
        b = Broker(self.data, "--broker", "default/default")
        try:
            for path in ("/v1/brokers/team-a/main", "/v1/brokers/team-b/gone"):
                self.assertEqual(b.request("PUT", path)[0].status, 201)
            self.assertEqual(b.request("DELETE", "/v1/brokers/team-b/gone")[0].status, 204)
        finally:
            self.assertEqual(b.stop(signal.SIGKILL), -signal.SIGKILL)
        with open(state) as f:
            kept = json.load(f)["brokers"]
        self.assertEqual([(x["namespace"], x["name"]) for x in kept], [("team-a", "main")])
        b = Broker(self.data, "--broker", "default/default")
        try:
            r, body = b.request("GET", "/v1/brokers")
            names = {(x["namespace"], x["name"]) for x in json.loads(body)["brokers"]}
            self.assertEqual(names, {("default", "default"), ("team-a", "main")})
            r, body = b.request("POST", "/team-a/main", b"{}", binary_headers(1))
            self.assertEqual(r.status, 202, body)
            self.assertEqual(b.request("POST", "/team-b/gone", b"{}", binary_headers(2))[0].status,
                             404)
        finally:
            self.assertEqual(b.stop(), 0)

        # A file that is not the brokers' list stops the start, naming it.
        with open(state, "w") as f:
            f.write('{"brokers": [{"namespace": "Bad_NS", "name": "x"}]}')
        p = subprocess.run([OUTPOST, "broker", "--listen", "127.0.0.1:0", "--data", self.data],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("brokers.json: broker Bad_NS/x", p.stderr)

        # A state file that cannot be written: the PUT is refused, not
        # answered 201 for a broker a restart would forget.
        os.remove(state)
        os.mkdir(state + ".tmp")  # the new file cannot be made there
        b = Broker(self.data)
        try:
            r, body = b.request("PUT", "/v1/brokers/team-c/x")
            self.assertEqual(r.status, 503, body)
            self.assertIn(b"not declared", body)
            self.assertEqual(b.request("POST", "/team-c/x", b"{}", binary_headers(3))[0].status,
                             404)
        finally:
            self.assertEqual(b.stop(), 0)


ROLE_TRIGGER = """\
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: role-t, namespace: default}
spec: {broker: default, subscriber: {uri: "http://127.0.0.1:1/"}}
"""


class RoleTest(unittest.TestCase):
    """`--role ingress|dispatcher`: each process refuses the other's half
    with a 404 whose JSON body says where to go (test_kafka.py shows the
    two halves working together over a shared Kafka)."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.dir.name, "broker.db")
        self.b = None

    def tearDown(self):
        if self.b:
            self.assertEqual(self.b.stop(), 0, "clean exit on SIGTERM")
        self.dir.cleanup()

    def start(self, *args):
        self.b = Broker(self.data, "--triggers-state", os.path.join(self.dir.name, "t.json"),
                        *args)
        return self.b

    def health(self):
        r, body = self.b.request("GET", "/healthz")
        self.assertEqual(r.status, 200, body)
        return json.loads(body)

    def metric_names(self):
        r, body = self.b.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        return {line.split()[2] for line in body.decode().splitlines()
                if line.startswith("# TYPE ")}

    def test_default_role_is_all(self):
        self.start()
        self.assertEqual(self.health()["role"], "all")
        r, body = self.b.request("GET", "/v1/triggers")
        self.assertEqual((r.status, json.loads(body)), (200, []))
        r, body = self.b.request("POST", "/default/default", b"{}", binary_headers("all-1"))
        self.assertEqual(r.status, 202, body)

    def test_ingress_takes_events_and_has_no_dispatcher(self):
        self.start("--role", "ingress")
        self.assertEqual(self.health()["role"], "ingress")
        for method, path, body in (("GET", "/v1/triggers", None),
                                   ("PUT", "/v1/triggers", ROLE_TRIGGER),
                                   ("GET", "/v1/triggers/default/role-t", None),
                                   ("DELETE", "/v1/triggers/default/role-t", None)):
            with self.subTest(f"{method} {path}"):
                r, data = self.b.request(method, path, body,
                                         {"Content-Type": "application/yaml"} if body else {})
                self.assertEqual(r.status, 404, data)
                err = json.loads(data)["error"]
                self.assertIn("--role ingress", err)
                self.assertIn("dispatcher", err)
        # No dispatcher started: none of its metrics.
        names = self.metric_names()
        self.assertIn("outpost_ingress_requests_rejected_total", names)
        self.assertFalse({n for n in names if n.startswith(("outpost_trigger_",
                                                             "outpost_dispatcher_"))}, names)
        r, body = self.b.request("POST", "/default/default", b'{"a":1}', binary_headers("in-1"))
        self.assertEqual(r.status, 202, body)
        self.assertEqual([h["ce_id"] for *_, h, _ in records(self.data)], ["in-1"])
        # The broker admin API stays: brokers are declared on each ingress.
        r, _ = self.b.request("PUT", "/v1/brokers/team-a/main")
        self.assertEqual(r.status, 201)
        self.assertFalse(os.path.exists(os.path.join(self.dir.name, "t.json")),
                         "no trigger state written by an ingress")

    def test_dispatcher_takes_triggers_and_refuses_events(self):
        self.start("--role", "dispatcher")
        self.assertEqual(self.health()["role"], "dispatcher")
        for path in ("/default/default", "/team-a/nope"):
            with self.subTest(path):
                r, data = self.b.request("POST", path, b"{}", binary_headers("d-1"))
                self.assertEqual(r.status, 404, data)
                err = json.loads(data)["error"]
                self.assertIn("--role dispatcher", err)
                self.assertIn("POST events to an ingress", err)
        self.assertEqual(records(self.data), [], "nothing reached the log")
        r, data = self.b.request("PUT", "/v1/triggers", ROLE_TRIGGER,
                                 {"Content-Type": "application/yaml"})
        self.assertEqual(r.status, 200, data)
        self.assertEqual(json.loads(data)["applied"],
                         [{"namespace": "default", "name": "role-t", "result": "created"}])
        r, data = self.b.request("GET", "/v1/triggers/default/role-t")
        self.assertEqual(r.status, 200, data)
        self.assertIn("outpost_dispatcher_inflight_deliveries", self.metric_names())
        r, _ = self.b.request("GET", "/readyz")
        self.assertEqual(r.status, 200)

    def test_bad_role_exits_2(self):
        for role in ("both", "", "Ingress"):
            with self.subTest(role=role):
                p = subprocess.run([OUTPOST, "broker", "--listen", "127.0.0.1:0", "--data",
                                    self.data, "--role", role],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(f"--role is all, ingress or dispatcher, not '{role}'", p.stderr)
        self.assertFalse(os.path.exists(self.data), "nothing started")


@unittest.skipIf(EXTRA, "the log's limits do not depend on the HTTP thread model")
class LogLimitsTest(unittest.TestCase):
    """--retention, --retention-bytes and --max-log-bytes of the embedded log."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.dir.name, "broker.db")

    def tearDown(self):
        self.dir.cleanup()

    def post(self, b, i):
        return b.request("POST", "/default/default", b'{"a":1}', binary_headers(i))

    def test_retention_by_age_and_by_size(self):
        for flags in (["--retention", "PT1S"], ["--retention-bytes", "1"]):
            with self.subTest(flags=flags):
                if os.path.exists(self.data):
                    os.remove(self.data)
                b = Broker(self.data, *flags)
                try:
                    for i in range(5):
                        self.assertEqual(self.post(b, i)[0].status, 202)
                    self.assertEqual(len(records(self.data)), 5)
                    # Retention runs every 5 s; no consumer group holds them.
                    wait_for("retention", lambda: records(self.data) == [], timeout=20, step=0.2)
                    # Offsets go on from where they were.
                    self.assertEqual(self.post(b, 5)[0].status, 202)
                    self.assertEqual([r[2] for r in records(self.data)], [5])
                finally:
                    self.assertEqual(b.stop(), 0)

    def test_default_keeps_records(self):
        b = Broker(self.data)
        try:
            for i in range(3):
                self.assertEqual(self.post(b, i)[0].status, 202)
            time.sleep(6)  # a retention pass has run
            self.assertEqual(len(records(self.data)), 3)
        finally:
            self.assertEqual(b.stop(), 0)

    def test_max_log_bytes_refuses_with_503(self):
        b = Broker(self.data, "--max-log-bytes", "1")
        try:
            r, body = self.post(b, 1)
            self.assertEqual(r.status, 503, body)
            self.assertIn("log full", json.loads(body)["error"])
            self.assertEqual(records(self.data), [])
            _, metrics = b.request("GET", "/metrics")
            self.assertIn('outpost_log_commits_total{result="failed"} 1\n', metrics.decode())
        finally:
            self.assertEqual(b.stop(), 0)

    def test_bad_values_exit_2(self):
        cases = [(["--retention", "7d"], "--retention wants an ISO-8601 duration"),
                 (["--retention", "-1"], "--retention wants an ISO-8601 duration"),
                 (["--retention-bytes", "-5"], "--retention-bytes wants a number of bytes"),
                 (["--max-log-bytes", "1k"], "--max-log-bytes wants a number of bytes"),
                 (["--kafka", "mock", "--max-log-bytes", "1"], "is for the embedded log"),
                 (["--topic-config", "retention.ms=1"], "--topic-config is for Kafka")]
        for args, msg in cases:
            with self.subTest(args=args):
                p = subprocess.run([OUTPOST, "broker", "--listen", "127.0.0.1:0", "--data",
                                    self.data, *args], capture_output=True, text=True, timeout=10)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(msg, p.stderr)
        self.assertFalse(os.path.exists(self.data), "nothing started")


class CrashTest(unittest.TestCase):
    """kill -9 while many clients post: nothing that got a 202 is lost."""

    def test_kill9_loses_no_acknowledged_event(self):
        with tempfile.TemporaryDirectory() as d:
            data = os.path.join(d, "broker.db")
            b = Broker(data)
            acked, lock, stop = {}, threading.Lock(), threading.Event()

            def client(cid):
                c = b.conn()
                i = 0
                while not stop.is_set():
                    eid = f"c{cid}-{i}"
                    body = json.dumps({"client": cid, "n": i}).encode()
                    try:
                        c.request("POST", "/default/default", body=body, headers=binary_headers(eid))
                        r = c.getresponse()
                        r.read()
                    except (OSError, http.client.HTTPException):
                        c.close()
                        return  # the broker died under us: this event was not acknowledged
                    if r.status == 202:
                        with lock:
                            acked[eid] = body
                    i += 1
                c.close()

            threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait()
            stop.set()
            for t in threads:
                t.join()
            b.proc.stdout.close()
            self.assertGreater(len(acked), 100, "the clients got some 202s before the kill")

            b = Broker(data)  # restart on the same file: it must open cleanly
            r, _ = b.request("POST", "/default/default", b"{}", binary_headers("after"))
            self.assertEqual(r.status, 202)
            self.assertEqual(b.stop(), 0)
            stored = {h["ce_id"]: v for *_, h, v in records(data)}
            missing = [e for e in acked if e not in stored]
            self.assertEqual(missing, [], f"{len(missing)} acknowledged events lost")
            for eid, body in acked.items():
                self.assertEqual(stored[eid], body, eid)
            offsets = [o for _, _, o, *_ in records(data)]
            self.assertEqual(offsets, list(range(len(offsets))), "offsets dense after restart")
            print(f"crash test: {len(acked)} acknowledged before kill -9, "
                  f"{len(stored)} stored, 0 lost", file=sys.stderr)


if __name__ == "__main__":
    OUTPOST = sys.argv.pop(1)
    pki = None
    if os.environ.get("OUTPOST_TEST_TLS"):
        pki = tempfile.mkdtemp(prefix="outpost-ingress-tls-")
        make_ca(pki)
        server_cert(pki, "srv")
        EXTRA += ["--tls-cert", f"{pki}/srv.crt", "--tls-key", f"{pki}/srv.key"]
        TLS = ssl.create_default_context(cafile=f"{pki}/ca.crt")
    try:
        unittest.main(verbosity=2)
    finally:
        if pki:
            shutil.rmtree(pki, ignore_errors=True)
