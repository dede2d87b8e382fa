#!/usr/bin/env python3
"""The Kafka log's secrets from the environment: OUTPOST_KAFKA_SASL_PASSWORD
reaches the cluster as the SASL PLAIN password, and is on no command line; a
--kafka-property sasl.password overrides it.

The cluster here is a FAKE Kafka broker (FakeSaslBroker below), because
librdkafka's mock cluster does not authenticate: it answers just enough of
the protocol (ApiVersions, SaslHandshake) for a client to send its
SaslAuthenticate, and records the PLAIN token (authzid NUL user NUL
password). Nothing else of Kafka is spoken; the broker process is stopped
once the token has come.

Usage: test_kafka_secret_env.py /path/to/outpost
"""
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from fake_kafka import FakeKafkaBroker  # noqa: E402

OUTPOST = None


class FakeSaslBroker(FakeKafkaBroker):
    """A FAKE Kafka broker: takes connections on 127.0.0.1 and keeps the SASL
    PLAIN tokens clients send."""

    APIS = [(18, 0, 2), (17, 0, 1), (36, 0, 1), (3, 0, 4)]  # (api key, min, max version)

    def __init__(self):
        self.tokens = []
        self.cv = threading.Condition()
        super().__init__()

    def handle(self, key, ver, body):
        if key == 17:  # SaslHandshake: PLAIN only
            return struct.pack(">hih", 0, 1, 5) + b"PLAIN"
        if key == 36:  # SaslAuthenticate: keep the token, then hang up
            n = struct.unpack(">i", body[:4])[0]
            with self.cv:
                self.tokens.append(body[4:4 + n])
                self.cv.notify_all()
        return None

    def first_token(self, timeout=20):
        with self.cv:
            self.cv.wait_for(lambda: self.tokens, timeout)
            return self.tokens[0] if self.tokens else None


class SecretEnv(unittest.TestCase):
    def run_broker(self, env_password, *props):
        fake = FakeSaslBroker()
        self.addCleanup(fake.close)
        listen = socket.socket()
        listen.bind(("127.0.0.1", 0))
        port = listen.getsockname()[1]
        listen.close()
        env = dict(os.environ)
        env.pop("OUTPOST_KAFKA_SASL_PASSWORD", None)
        if env_password is not None:
            env["OUTPOST_KAFKA_SASL_PASSWORD"] = env_password
        argv = [OUTPOST, "broker", "--listen", f"127.0.0.1:{port}", "--kafka",
                f"127.0.0.1:{fake.port}", "--kafka-property", "security.protocol=SASL_PLAINTEXT",
                "--kafka-property", "sasl.mechanisms=PLAIN", "--kafka-property",
                "sasl.username=alice"]
        for p in props:
            argv += ["--kafka-property", p]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            token = fake.first_token()
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                cmdline = f.read() if proc.poll() is None else b""
        finally:
            proc.send_signal(signal.SIGKILL)
            out = proc.communicate(timeout=10)[0].decode(errors="replace")
        self.assertIsNotNone(token, "no SASL token reached the fake broker:\n" + out)
        return token, cmdline

    def test_password_from_the_environment(self):
        password = "s3cret-" + secrets.token_hex(6)
        token, cmdline = self.run_broker(password)
        self.assertEqual(token, b"\0alice\0" + password.encode())
        self.assertIn(b"sasl.username=alice", cmdline)  # the command line was read
        self.assertNotIn(password.encode(), cmdline)

    def test_a_property_overrides_it(self):
        token, _ = self.run_broker("from-env", "sasl.password=from-flag")
        self.assertEqual(token, b"\0alice\0from-flag")


if __name__ == "__main__":
    OUTPOST = sys.argv.pop(1)
    unittest.main(verbosity=2)
