#!/usr/bin/env python3
"""The configs of the topics `outpost broker --kafka` creates: each
--topic-config K=V, --retention as retention.ms and --retention-bytes as
retention.bytes (0: -1) go into CreateTopics for every topic; without them
CreateTopics carries no configs (the cluster's defaults). A config the
cluster refuses stops the broker with the topic and the cluster's message,
not a fall-back to auto-creation. Conflicting or misplaced flags exit 2.

The cluster here is a FAKE Kafka broker (FakeAdminBroker below), because
librdkafka 2.0's mock cluster has no CreateTopics and keeps no topic
configs: it answers just enough of the protocol (ApiVersions, Metadata v1,
InitProducerId, CreateTopics v0-v4) for the broker to create its topics and
see them in the metadata, and records each topic's configs. Nothing else of
Kafka is spoken; the broker process is stopped once it listens.

Usage: test_kafka_topic_config.py /path/to/outpost
"""
import os
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from fake_kafka import FakeKafkaBroker  # noqa: E402
from outpost_test import free_port, wait_for  # noqa: E402

OUTPOST = None
TOPIC = "knative-broker-default-default"
TOPIC_B = "knative-broker-team-a-orders"
# (api key, min, max version), none of them flexible. CreateTopics up to v4:
# librdkafka sends the broker's replication factor -1 (the cluster's default,
# KIP-464) in no older version; v4 is laid out as v3. InitProducerId: without
# it the idempotent producer fails fatally.
APIS = [(18, 0, 2), (3, 1, 1), (19, 0, 4), (22, 0, 1)]


class FakeAdminBroker(FakeKafkaBroker):
    """A FAKE Kafka broker, node 1 and controller of a one-node cluster on
    127.0.0.1: keeps the topics clients create, with their configs, and
    refuses a topic with a config named in refuse (INVALID_CONFIG)."""

    APIS = APIS

    def __init__(self, refuse=()):
        self.refuse = set(refuse)
        self.created = {}  # topic: {config: value}
        self.partitions = {}  # topic: its partition count
        self.asked = []  # (topic, {config: value}) of every CreateTopics entry
        self.unknown_named = set()  # unknown topics Metadata asked for by name
        self.lock = threading.Lock()
        super().__init__()

    def handle(self, key, ver, body):
        if key == 3:
            return self.metadata(MetadataRequest[1].decode(body).topics)
        if key == 19:  # v4 is read as v3, which python3-kafka knows
            return self.create_topics(ver, CreateTopicsRequest[min(ver, 3)].decode(body))
        if key == 22:  # InitProducerId: producer id 1000, epoch 0
            return struct.pack(">ihqh", 0, 0, 1000, 0)
        return None

    def metadata(self, names):
        """Metadata v1: this node, and the topics asked for (null: all); a
        named unknown topic is error 3 (UNKNOWN_TOPIC_OR_PARTITION), never
        created."""
        with self.lock:
            self.unknown_named.update(t for t in names or () if t not in self.created)
            topics = []
            for t in self.created if names is None else names:
                parts = [(0, p, 1, [1], [1]) for p in range(self.partitions.get(t, 0))]
                topics.append((0 if t in self.created else 3, t, False, parts))
        return MetadataResponse[1].SCHEMA.encode([[(1, "127.0.0.1", self.port, None)], 1, topics])

    def create_topics(self, ver, req):
        """CreateTopics v0-v4: each topic created with its configs, or
        refused (40 INVALID_CONFIG, 36 TOPIC_ALREADY_EXISTS)."""
        results = []
        with self.lock:
            for name, n, _, _, configs in req.create_topic_requests:
                configs = dict(configs)
                self.asked.append((name, configs))
                bad = sorted(self.refuse & configs.keys())
                if bad:
                    results.append((name, 40, f"Unknown topic config name: {bad[0]}"))
                elif name in self.created:
                    results.append((name, 36, f"Topic '{name}' already exists."))
                else:
                    if not (ver >= 1 and req.validate_only):
                        self.created[name] = configs
                        self.partitions[name] = max(n, 1)
                    results.append((name, 0, None))
        if ver == 0:
            return CreateTopicsResponse[0].SCHEMA.encode([[r[:2] for r in results]])
        if ver == 1:
            return CreateTopicsResponse[1].SCHEMA.encode([results])
        return CreateTopicsResponse[2].SCHEMA.encode([0, results])


class TopicConfig(unittest.TestCase):
    def run_broker(self, *flags, refuse=()):
        """(fake, exit status, output) of a broker on a fake cluster, stopped
        once it listens; the status is None when it had to be stopped."""
        fake = FakeAdminBroker(refuse)
        self.addCleanup(fake.close)
        cwd = tempfile.TemporaryDirectory(prefix="outpost-topic-config-")  # no stray brokers.json
        self.addCleanup(cwd.cleanup)
        out = tempfile.TemporaryFile("w+")
        self.addCleanup(out.close)
        proc = subprocess.Popen([OUTPOST, "broker", "--listen", f"127.0.0.1:{free_port()}",
                                 "--kafka", f"127.0.0.1:{fake.port}", *flags], cwd=cwd.name,
                                stdout=out, stderr=subprocess.STDOUT)

        def output():
            out.seek(0)
            return out.read()

        try:
            wait_for("the broker to listen or exit",
                     lambda: proc.poll() is not None or "listening on" in output(), timeout=20)
            status = proc.poll()
        finally:
            proc.kill()
            proc.wait(timeout=10)
        return fake, status, output()

    def created(self, *flags):
        fake, status, out = self.run_broker(*flags)
        self.assertIsNone(status, "the broker exited:\n" + out)
        self.assertEqual(fake.unknown_named, set(), "asked for by name (auto-creation):\n" + out)
        return fake.created

    def test_no_flags_no_configs(self):
        self.assertEqual(self.created(), {TOPIC: {}})

    def test_every_topic_gets_the_configs(self):
        want = {"retention.ms": "86400000", "retention.bytes": "1000000",
                "cleanup.policy": "delete"}
        created = self.created("--broker", "default/default", "--broker", "team-a/orders",
                               "--retention", "P1D", "--retention-bytes", "1000000",
                               "--topic-config", "cleanup.policy=delete")
        self.assertEqual(created, {TOPIC: want, TOPIC_B: want})

    def test_retention_0_is_forever(self):
        self.assertEqual(self.created("--retention", "0"), {TOPIC: {"retention.ms": "-1"}})

    def test_a_refused_config_stops_the_broker(self):
        fake, status, out = self.run_broker("--topic-config", "bogus.thing=1",
                                            refuse={"bogus.thing"})
        self.assertIsNotNone(status, "the broker went on:\n" + out)
        self.assertEqual(status, 1, out)
        self.assertIn(TOPIC, out)
        self.assertIn("Unknown topic config name: bogus.thing", out)
        self.assertIn("broker default/default: the log cannot make its topic (the cluster "
                      "refused it", out)
        self.assertEqual(fake.asked, [(TOPIC, {"bogus.thing": "1"})])
        self.assertEqual(fake.created, {})
        self.assertEqual(fake.unknown_named, set(), "no fall-back to auto-creation:\n" + out)

    def test_bad_flags_exit_2(self):
        cases = [(["--kafka", "127.0.0.1:1", "--retention", "P1D", "--topic-config",
                   "retention.ms=5"], "retention.ms"),
                 (["--kafka", "127.0.0.1:1", "--topic-config", "cleanup.policy"],
                  "cleanup.policy"),
                 (["--topic-config", "cleanup.policy=delete"], "--topic-config"),
                 (["--kafka", "127.0.0.1:1", "--max-log-bytes", "1"], "--max-log-bytes")]
        for flags, named in cases:
            with self.subTest(flags=flags), tempfile.TemporaryDirectory() as cwd:
                r = subprocess.run([OUTPOST, "broker", "--listen", f"127.0.0.1:{free_port()}",
                                    *flags], cwd=cwd, capture_output=True, text=True,
                                   timeout=20)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(named, r.stderr)


if __name__ == "__main__":
    OUTPOST = os.path.abspath(sys.argv.pop(1))  # the broker runs in a directory of its own
    unittest.main(verbosity=2)
