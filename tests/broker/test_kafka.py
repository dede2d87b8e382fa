#!/usr/bin/env python3
"""`outpost broker --kafka` against librdkafka's mock cluster (3 brokers, the
Kafka protocol over TCP on 127.0.0.1, run by the kafka_mock test tool).

Events POSTed over HTTP in binary, structured and batched mode are read back
by two Kafka consumers that share no code with Outpost: kcat (`kcat -C -J`,
on librdkafka) and python3-kafka (its own implementation of the protocol).
Each must see the CloudEvents Kafka binding's binary mode: ce_ headers,
content-type, partitionkey as the key, the data as the value.

Faults injected through the mock: produce requests failing with retriable
errors (still 202, each event stored once), a partition's leader moving, and
every broker down (503 with Retry-After, never 202 for an event that is not
stored). At the end every event that got a 202 is in the topic exactly once.

The split (`--role ingress` and `--role dispatcher` as two processes on one
mock cluster): events POSTed to the ingress are delivered by the
dispatcher's trigger to a subscriber, each once, also across a restart of
the dispatcher while the ingress goes on taking events.

Usage: test_kafka.py /path/to/outpost /path/to/kafka_mock
"""
import http.client
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import binary_headers, free_port, wait_for  # noqa: E402

OUTPOST = KAFKA_MOCK = None
TOPIC = "knative-broker-default-default"
TOPIC_B = "knative-broker-team-a-orders"


class Mock:
    """The kafka_mock tool: a mock cluster and its fault injection."""

    def __init__(self, brokers=3):
        self.proc = subprocess.Popen([KAFKA_MOCK, str(brokers)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("bootstrap "):
            raise RuntimeError(f"kafka_mock did not start: {line!r}")
        self.bootstrap = line.split()[1]

    def do(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"kafka_mock {cmd!r}: {answer}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self.proc.stdout.close()


class Broker:
    """`outpost broker --kafka` on a free port; its log lines go to a file."""

    def __init__(self, bootstrap, *extra):
        self.port = free_port()
        self.logfile = tempfile.NamedTemporaryFile("w+", prefix="outpost-kafka-", suffix=".log")
        self.proc = subprocess.Popen(
            [OUTPOST, "broker", "--listen", f"127.0.0.1:{self.port}", "--kafka", bootstrap,
             "--broker", "default/default", "--broker", "team-a/orders", *extra],
            stdout=subprocess.PIPE, stderr=self.logfile, text=True)
        line = self.proc.stdout.readline()
        while line and not line.startswith("listening on"):
            line = self.proc.stdout.readline()
        if not line:
            self.logfile.seek(0)
            raise RuntimeError("outpost broker did not start: " + self.logfile.read())

    def post(self, path, body, headers, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("POST", path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.logfile.close()
        return self.proc.returncode


def kcat(bootstrap, topic):
    """Every record of topic, as kcat -J prints them (one JSON object a line)."""
    out = subprocess.run(["kcat", "-C", "-J", "-b", bootstrap, "-t", topic, "-o", "beginning",
                          "-e", "-q"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("kcat: " + out.stderr)
    recs = []
    for line in out.stdout.splitlines():
        m = json.loads(line)
        h = m.get("headers") or []
        m["hdrs"] = dict(zip(h[0::2], h[1::2]))
        recs.append(m)
    return recs


def python_kafka(bootstrap, topic, want):
    """Every record of topic read by python3-kafka (kafka-python), no group."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                      api_version_auto_timeout_ms=10000, consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    recs, deadline = [], time.time() + 30
    while len(recs) < want and time.time() < deadline:
        for m in c:
            recs.append(m)
            if len(recs) >= want:
                break
    c.close()
    return recs


class KafkaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = Mock(3)
        for t in (TOPIC, TOPIC_B):
            cls.mock.do(f"topic {t} 3 3")
        # Statistics (the outpost_kafka_* metrics) every 200 ms, not 5 s.
        cls.broker = Broker(cls.mock.bootstrap, "--delivery-timeout", "3000",
                            "--kafka-property", "statistics.interval.ms=200")
        cls.accepted = []  # ce-id of every event that got a 202, in TOPIC

    @classmethod
    def tearDownClass(cls):
        rc = cls.broker.stop()
        cls.mock.stop()
        assert rc == 0, rc

    def post(self, i, **extra):
        r, body = self.broker.post("/default/default", json.dumps({"n": i}), binary_headers(i, **extra))
        if r.status == 202:
            self.accepted.append(str(i))
        return r, body

    def log_counts(self):
        """The log's own counters on /metrics: appends, records, deliveries."""
        port = self.broker.port
        return (metric(port, "outpost_log_appends_total"), metric(port, "outpost_log_records_total"),
                metric(port, "outpost_log_deliveries_total", result="ok"),
                metric(port, "outpost_log_deliveries_total", result="failed"))

    def connected(self):
        """{broker id: 1 or 0}, the producer's connections from librdkafka's
        last statistics."""
        _, text = request(self.broker.port, "GET", "/metrics")
        return {int(b): int(v) for b, v in re.findall(
            r'^outpost_kafka_broker_connected\{broker="(\d+)"\} (\d+)$', text.decode(), re.M)}

    def test_1_binary_structured_batch_read_back_by_kcat_and_python_kafka(self):
        before = self.log_counts()
        euro = "Euro \u20ac \U0001F600"
        r, body = self.post("b1", **{"ce-partitionkey": "env-7", "ce-subject": "Euro%20%E2%82%AC%20%F0%9F%98%80"})
        self.assertEqual(r.status, 202, body)
        structured = {"specversion": "1.0", "id": "s1", "source": "/test", "type": "dev.outpost.test",
                      "partitionkey": "env-7", "datacontenttype": "application/json",
                      "data": {"structured": True}}
        r, body = self.broker.post("/default/default", json.dumps(structured),
                                   {"Content-Type": "application/cloudevents+json"})
        self.assertEqual(r.status, 202, body)
        self.accepted.append("s1")
        batch = [dict(structured, id=f"batch-{k}", partitionkey=f"env-{k}") for k in range(3)]
        r, body = self.broker.post("/default/default", json.dumps(batch),
                                   {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(r.status, 202, body)
        self.accepted += [f"batch-{k}" for k in range(3)]
        # Another broker writes to its own topic.
        r, body = self.broker.post("/team-a/orders", "{}", binary_headers("o1"))
        self.assertEqual(r.status, 202, body)
        # Counted by the log: 4 appends of 6 records, each delivered, none failed.
        after = self.log_counts()
        self.assertEqual([a - b for a, b in zip(after, before)], [4, 6, 6, 0], (before, after))
        # The three brokers by their node ids, the producer connected to one
        # at least (the leaders it wrote to), each with its round trip.
        wait_until(lambda: set(self.connected()) == {1, 2, 3} and 1 in self.connected().values(),
                   "the brokers in outpost_kafka_broker_connected")
        rtt = {b: metric(self.broker.port, "outpost_kafka_broker_rtt_seconds", broker=str(b))
               for b in (1, 2, 3)}
        self.assertTrue(all(v is not None and 0 <= v < 10 for v in rtt.values()), rtt)
        self.assertEqual(metric(self.broker.port, "outpost_kafka_producer_queue_records"), 0)

        recs = {m["hdrs"]["ce_id"]: m for m in kcat(self.mock.bootstrap, TOPIC)}
        for want in ["b1", "s1", "batch-0", "batch-1", "batch-2"]:
            self.assertIn(want, recs)
        b1 = recs["b1"]
        self.assertEqual(b1["key"], "env-7")
        self.assertEqual(b1["payload"], '{"n": "b1"}')
        h = b1["hdrs"]
        self.assertEqual(h["ce_specversion"], "1.0")
        self.assertEqual(h["ce_source"], "/test")
        self.assertEqual(h["ce_type"], "dev.outpost.test")
        self.assertEqual(h["ce_subject"], euro)  # percent-decoded from HTTP, UTF-8 in Kafka
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(h["ce_knativebrokerttl"], "255")
        self.assertRegex(h["ce_knativearrivaltime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")
        # Structured in, binary mode in Kafka: attributes as headers, data as the value.
        s1 = recs["s1"]
        self.assertEqual(s1["key"], "env-7")
        self.assertEqual(json.loads(s1["payload"]), {"structured": True})
        self.assertEqual(s1["hdrs"]["content-type"], "application/json")
        self.assertNotIn("ce_datacontenttype", s1["hdrs"])
        # One key, one partition: b1 and s1 (env-7) side by side, in order.
        self.assertEqual(b1["partition"], s1["partition"])
        self.assertLess(b1["offset"], s1["offset"])
        for k in range(3):
            self.assertEqual(recs[f"batch-{k}"]["key"], f"env-{k}")
        self.assertEqual([m["hdrs"]["ce_id"] for m in kcat(self.mock.bootstrap, TOPIC_B)], ["o1"])

        # python3-kafka, an independent implementation, reads the same records.
        py = python_kafka(self.mock.bootstrap, TOPIC, len(recs))
        self.assertEqual(len(py), len(recs))
        for m in py:
            hdrs = {k: v.decode() for k, v in m.headers}
            k = recs[hdrs["ce_id"]]
            self.assertEqual(hdrs, k["hdrs"])
            self.assertEqual(m.key.decode() if m.key else None, k["key"])
            self.assertEqual(m.value.decode(), k["payload"])
            self.assertEqual((m.partition, m.offset), (k["partition"], k["offset"]))

    def test_2_produce_errors_are_retried_and_stored_once(self):
        # ApiKey 0 = Produce; 19 = NOT_ENOUGH_REPLICAS, 6 = NOT_LEADER_FOR_PARTITION: retriable.
        self.mock.do("errors 0 19 3")
        self.mock.do("errors 0 6 2")
        for i in range(20):
            r, body = self.post(f"retry-{i}", **{"ce-partitionkey": "env-r"})
            self.assertEqual(r.status, 202, body)
        # A leader moving under load.
        self.mock.do(f"leader {TOPIC} 0 2")
        self.mock.do(f"leader {TOPIC} 1 3")
        self.mock.do(f"leader {TOPIC} 2 1")
        for i in range(20):
            r, body = self.post(f"moved-{i}", **{"ce-partitionkey": f"env-{i}"})
            self.assertEqual(r.status, 202, body)
        ids = [m["hdrs"]["ce_id"] for m in kcat(self.mock.bootstrap, TOPIC)]
        for i in range(20):
            self.assertEqual(ids.count(f"retry-{i}"), 1)
            self.assertEqual(ids.count(f"moved-{i}"), 1)
        # Ordered per key despite the retries.
        retry = [x for x in ids if x.startswith("retry-")]
        self.assertEqual(retry, [f"retry-{i}" for i in range(20)])

    def test_3_cluster_down_gives_503_and_nothing_acknowledged_is_lost(self):
        before = self.log_counts()
        for b in (1, 2, 3):
            self.mock.do(f"down {b}")
        t0 = time.time()
        r, body = self.post("down-1")
        self.assertEqual(r.status, 503, body)
        refused = 1
        # The metrics show it: no connection, the record failed.
        wait_until(lambda: self.connected() == {1: 0, 2: 0, 3: 0}, "no broker connected")
        self.assertEqual(self.log_counts()[3] - before[3], 1)
        self.assertEqual(r.getheader("Retry-After"), "1")
        err = json.loads(body)
        self.assertIn("log", err["error"])
        # Answered by the delivery timeout (3 s), not left hanging.
        self.assertLess(time.time() - t0, 20)
        for b in (1, 2, 3):
            self.mock.do(f"up {b}")
        # Back: the broker accepts again once the client has reconnected.
        deadline, ok = time.time() + 60, False
        n = 0
        while time.time() < deadline and not ok:
            n += 1
            r, body = self.post(f"back-{n}")
            ok = r.status == 202
            if not ok:
                self.assertEqual(r.status, 503, body)
                refused += 1
        self.assertTrue(ok, "the broker never came back after the cluster did")
        # One failed delivery for each 503, one delivery for the 202.
        after = self.log_counts()
        self.assertEqual([a - b for a, b in zip(after, before)], [n + 1, n + 1, 1, refused],
                         (before, after))
        wait_until(lambda: 1 in self.connected().values(), "a broker connected again")
        # Metrics count the 503s as log_unavailable.
        c = http.client.HTTPConnection("127.0.0.1", self.broker.port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        line = [x for x in text.splitlines()
                if x.startswith('outpost_ingress_requests_rejected_total{reason="log_unavailable"}')]
        self.assertTrue(line and int(line[0].split()[-1]) >= 1, line)

    def test_4_every_acknowledged_event_is_there_exactly_once(self):
        ids = [m["hdrs"]["ce_id"] for m in kcat(self.mock.bootstrap, TOPIC)]
        for i in self.accepted:
            self.assertEqual(ids.count(i), 1, i)


class Subscriber:
    """A trigger's subscriber: an HTTP server on 127.0.0.1 that answers 200
    and keeps the ce-id of every event it gets, in arrival order."""

    def __init__(self):
        self.ids, self.lock = [], threading.Lock()
        sub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sub.lock:
                    sub.ids.append(self.headers.get("ce-id"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def got(self):
        with self.lock:
            return list(self.ids)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def metric(port, name, **labels):
    """The sum of the samples of name (Prometheus text) whose labels include labels."""
    _, text = request(port, "GET", "/metrics")
    total = None
    for line in text.decode().splitlines():
        m = re.match(r"^([a-z_]+)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total = (total or 0) + float(m.group(4))
    return total


def wait_until(pred, what, timeout=30.0):
    return wait_for(what, pred, timeout)


class SplitTest(unittest.TestCase):
    """An ingress and a dispatcher, two processes on one Kafka (the
    kafka_mock tool: --kafka mock would give each process a cluster of its
    own), both given the same --config with the trigger, as one ConfigMap
    would be: only the dispatcher delivers it."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="outpost-split-")
        self.mock = Mock(1)
        # The dead-letter topic too: the mock has no CreateTopics, and the
        # dispatcher's attempt at it would wait for the admin timeout.
        for t in (TOPIC, TOPIC_B, TOPIC + "-dead-letter"):
            self.mock.do(f"topic {t} 3 1")
        self.sub = Subscriber()
        self.trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                        "metadata": {"name": "split", "namespace": "default"},
                        "spec": {"broker": "default",
                                 "filter": {"attributes": {"type": "split.evt"}},
                                 "subscriber": {"uri": self.sub.url}}}
        self.config = os.path.join(self.dir.name, "outpost.json")
        with open(self.config, "w") as f:
            json.dump([self.trigger], f)
        self.procs = []

    def tearDown(self):
        rcs = [b.stop() for b in self.procs]
        self.sub.stop()
        self.mock.stop()
        self.dir.cleanup()
        self.assertEqual(rcs, [0] * len(rcs), "every broker exits 0 on SIGTERM")

    def broker(self, role):
        b = Broker(self.mock.bootstrap, "--role", role, "--config", self.config,
                   "--triggers-state", os.path.join(self.dir.name, role + ".json"))
        self.procs.append(b)
        return b

    def post(self, b, ev_id, ev_type="split.evt", **extra):
        return b.post("/default/default", "{}", binary_headers(ev_id, **{"ce-type": ev_type}, **extra))

    def settle(self, disp, events):
        """Until the dispatcher has read `events` records and delivers none."""
        wait_until(lambda: metric(disp.port, "outpost_dispatcher_records_total", kind="event")
                   == events and metric(disp.port, "outpost_dispatcher_inflight_deliveries") == 0,
                   f"{events} records read by the dispatcher, none in delivery")
        time.sleep(0.5)  # anything delivered twice would show by now

    def test_ingress_events_delivered_by_the_dispatcher(self):
        ingress = self.broker("ingress")
        disp = self.broker("dispatcher")
        for b, role in ((ingress, "ingress"), (disp, "dispatcher")):
            st, body = request(b.port, "GET", "/healthz")
            h = json.loads(body)
            self.assertEqual((st, h["role"], h["kafka"]), (200, role, self.mock.bootstrap), h)
        r, body = self.post(disp, "refused")
        self.assertEqual(r.status, 404, body)
        self.assertIn("POST events to an ingress", json.loads(body)["error"])

        ids = [f"sp-{i}" for i in range(30)]
        for i, ev_id in enumerate(ids):
            r, body = self.post(ingress, ev_id, **{"ce-partitionkey": f"key-{i}"})
            self.assertEqual(r.status, 202, body)
        r, body = self.post(ingress, "other", "not.split")
        self.assertEqual(r.status, 202, body)
        wait_until(lambda: len(self.sub.got()) >= 30, "30 deliveries")
        self.settle(disp, 31)
        self.assertEqual(sorted(self.sub.got()), sorted(ids), "each matching event once")
        parts = {m["partition"] for m in kcat(self.mock.bootstrap, TOPIC)}
        self.assertGreaterEqual(len(parts), 2, "keys spread over the partitions")
        # The trigger API is the dispatcher's only.
        st, body = request(ingress.port, "GET", "/v1/triggers")
        self.assertEqual(st, 404, body)
        self.assertEqual(metric(ingress.port, "outpost_dispatcher_records_total"), None,
                         "the ingress reads nothing")
        st, body = request(disp.port, "GET", "/v1/triggers/default/split")
        self.assertEqual((st, json.loads(body)["status"]["delivered"]), (200, 30), body)

        # The dispatcher stops; the ingress goes on. A new dispatcher
        # delivers what came meanwhile, and only that: the positions are
        # committed in the shared cluster.
        self.assertEqual(disp.stop(), 0)
        self.procs.remove(disp)
        later = [f"late-{i}" for i in range(10)]
        for i, ev_id in enumerate(later):
            r, body = self.post(ingress, ev_id, **{"ce-partitionkey": f"key-{i}"})
            self.assertEqual(r.status, 202, body)
        time.sleep(0.5)
        self.assertEqual(len(self.sub.got()), 30, "nothing delivered with no dispatcher")
        disp = self.broker("dispatcher")
        wait_until(lambda: len(self.sub.got()) >= 40, "the 10 later events delivered")
        self.settle(disp, 10)
        self.assertEqual(sorted(self.sub.got()), sorted(ids + later), "each once, across the restart")


if __name__ == "__main__":
    OUTPOST, KAFKA_MOCK = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"])
