#!/usr/bin/env python3
"""Integration tests of `outpost broker --fast-lane` (core/httpd_fast.c) over
raw sockets, so that the bytes on the wire are exactly the test's: the lane
serves plain POSTs on keep-alive and pipelined connections and requests that
come in two writes; it gives anything else to libmicrohttpd, mid-connection
too, which answers it as the broker without the lane does (the oracle: the
same request to a second broker started without --fast-lane); an event whose
client left before the 202 is stored all the same; and every event stored is
one that was answered 202.

Usage: test_fast_lane.py /path/to/outpost
"""
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from outpost_test import (binary_headers, free_port, request, stop_process,  # noqa: E402
                          unpack_headers, wait_for)

OUTPOST = None
TIMEOUT = 30  # seconds for any one answer: the machine is noisy

# The whole of a 202 the lane writes, as libmicrohttpd writes it too.
ACCEPTED = re.compile(rb"HTTP/1\.1 202 Accepted\r\n"
                      rb"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n"
                      rb"Content-Length: 0\r\n\r\n")


class Broker:
    """One `outpost broker` on a free port, in a temporary directory of its
    own (its cwd, its --data file, its output in broker.log)."""

    def __init__(self, *extra, host="127.0.0.1"):
        self.dir = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.dir.name, "broker.db")
        self.log = os.path.join(self.dir.name, "broker.log")
        self.port = free_port()
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [OUTPOST, "broker", "--listen", f"{host}:{self.port}", "--data", self.data,
                 *extra], cwd=self.dir.name, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(f"outpost broker {' '.join(extra)} listening", self.listening)
        except BaseException:
            self.cleanup()
            raise

    def listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"outpost broker exited with {self.proc.returncode}: "
                               + self.output())
        return "listening on" in self.output()

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM (SIGKILL after 30 s); the exit status."""
        stop_process(self.proc, timeout=30)
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        self.dir.cleanup()

    def stored(self):
        """(ce_id, value) of every record of the log, sorted."""
        db = sqlite3.connect(self.data)
        try:
            rows = db.execute("SELECT topic, part, off, ts, key, headers, value FROM records "
                              "ORDER BY part, off").fetchall()
        finally:
            db.close()
        return sorted((unpack_headers(h)["ce_id"], bytes(v)) for _t, _p, _o, _ts, _k, h, v in rows)

    def mhd_connections(self):
        """{"poll": n, "epoll": n}, the connections libmicrohttpd's pools hold,
        from /metrics (whose own connection is one of them); None when it does
        not answer."""
        st, text, _ = request(self.port, "GET", "/metrics", timeout=TIMEOUT)
        if st != 200:
            return None
        return {p: int(n) for p, n in
                re.findall(r'^outpost_ingress_connections\{pool="(\w+)"\} (\d+)$', text, re.M)
                if p in ("poll", "epoll")}


def value(i):
    return b'{"n":"%s"}' % str(i).encode()


def post(i, path="/default/default", version="HTTP/1.1", body=None, extra=(), length=True):
    """The bytes of a binary-mode POST of event i (body value(i)), with a Host."""
    body = value(i) if body is None else body
    lines = [f"POST {path} {version}", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in binary_headers(i).items()]
    lines += [f"{k}: {v}" for k, v in extra]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Answer:
    """One answer as read off the wire: the raw bytes, its status line, its
    headers (in order) and its body."""

    def __init__(self, raw, head, body):
        self.raw = raw
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers = [tuple(x.strip() for x in h.split(":", 1)) for h in lines[1:]]
        self.body = body

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def comparable(self):
        """The answer without its Date's value, to compare two brokers'
        answers: the same headers in the same order."""
        return (self.status_line, [(k, "<date>" if k.lower() == "date" else v)
                                   for k, v in self.headers], self.body)

    def __repr__(self):
        return f"Answer({self.raw!r})"


class Conn:
    """A raw TCP connection to a broker: bytes out exactly as given, answers
    read back one at a time (pipelined ones stay buffered)."""

    def __init__(self, port, timeout=TIMEOUT, source=None, host="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout=timeout,
                                          source_address=(source, 0) if source else None)
        self.buf = b""
        self.sent = []  # everything sent, for the failure messages

    def send(self, data):
        self.sent.append(data)
        self.s.sendall(data)

    def _more(self):
        """Reads more into buf; False at EOF. AssertionError, with the bytes
        sent and received, when nothing comes in time."""
        try:
            chunk = self.s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError(f"nothing more within {self.s.gettimeout()} s; sent "
                                 f"{b''.join(self.sent)!r}, received so far {self.buf!r}")
        self.buf += chunk
        return bool(chunk)

    def answer(self):
        """The next answer, or None when the connection is closed before one
        begins. A 1xx is an answer of its own."""
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                if self.buf:
                    raise AssertionError(f"connection closed mid-answer: {self.buf!r}")
                return None
        end = self.buf.index(b"\r\n\r\n")
        head, rest = self.buf[:end], self.buf[end + 4:]
        a = Answer(b"", head, b"")
        if a.status < 200:
            n = 0
        elif a.header("Content-Length") is not None:
            n = int(a.header("Content-Length"))
        else:  # neither: the body runs to EOF
            while self._more():
                pass
            n = len(self.buf) - end - 4
            rest = self.buf[end + 4:]
        while len(rest) < n:
            if not self._more():
                raise AssertionError(f"connection closed mid-body: {self.buf!r}")
            rest = self.buf[end + 4:]
        raw = self.buf[:end + 4 + n]
        self.buf = self.buf[end + 4 + n:]
        return Answer(raw, head, rest[:n])

    def closed(self):
        """Whether the broker closes the connection with nothing more sent."""
        more = self._more()
        return not more and not self.buf

    def close(self):
        self.s.close()


def statuses(answers):
    return [a.status_line if a else "EOF" for a in answers]


class LaneTest(unittest.TestCase):
    """What the lane serves itself (cases 1, 2, 3, 6), on one broker with
    the default flags: the lane is the default."""

    def setUp(self):
        self.b = Broker()
        self.addCleanup(self.b.cleanup)

    def tearDown(self):
        self.assertEqual(self.b.stop(), 0, "clean exit on SIGTERM:\n" + self.b.output())

    def conn(self):
        c = Conn(self.b.port)
        self.addCleanup(c.close)
        return c

    def assert_in_lane(self, c):
        """c (open) is the lane's: libmicrohttpd holds only /metrics' own
        connection (it holds more for a moment after earlier ones closed)."""
        wait_for("libmicrohttpd to hold no connection but /metrics'",
                 lambda: sum((self.b.mhd_connections() or {"-": -1}).values()) == 1,
                 timeout=TIMEOUT)

    def assert_stored(self, ids):
        self.assertEqual(self.b.stored(), sorted((str(i), value(i)) for i in ids))

    def test_1_keep_alive(self):
        c = self.conn()
        for i in range(100):
            c.send(post(i))
            a = c.answer()
            self.assertIsNotNone(a, f"request {i}: connection closed, sent {c.sent[-1]!r}")
            self.assertRegex(a.raw, ACCEPTED, f"request {i}")
        self.assert_in_lane(c)
        self.assert_stored(range(100))

    def test_1b_header_names_in_any_case(self):
        # Header names are case-insensitive and may use any token character:
        # the lane takes such a request as it takes the common one.
        req = (post(0).replace(b"Host:", b"HOST:").replace(b"Content-Length:", b"content-LENGTH:")
               .replace(b"\r\n\r\n", b"\r\nConnection: Keep-Alive\r\n"
                        b"X-!#$%&'*+-.^_`|~09az: token\r\n\r\n", 1))
        c = self.conn()
        for _ in range(2):
            c.send(req)
            a = c.answer()
            self.assertIsNotNone(a, "connection closed")
            self.assertRegex(a.raw, ACCEPTED)
        self.assert_in_lane(c)
        self.assert_stored([0, 0])

    def test_2_pipelining(self):
        c = self.conn()
        c.send(post(0) + post(1) + post(2))
        for i in range(3):
            a = c.answer()
            self.assertIsNotNone(a, f"answer {i}: connection closed; received {c.buf!r}")
            self.assertRegex(a.raw, ACCEPTED, f"answer {i}")
        self.assert_in_lane(c)
        self.assert_stored(range(3))
        # Still usable afterwards.
        c.send(post(3))
        self.assertRegex(c.answer().raw, ACCEPTED)
        self.assert_stored(range(4))

    def test_2b_pipelining_answers_in_order(self):
        # The middle one is refused (404 with a JSON body, still a plain POST
        # the lane takes): the order of the answers shows.
        c = self.conn()
        c.send(post(0) + post(1, path="/default/nope") + post(2))
        got = [c.answer() for _ in range(3)]
        self.assertEqual(statuses(got), ["HTTP/1.1 202 Accepted", "HTTP/1.1 404 Not Found",
                                         "HTTP/1.1 202 Accepted"], got)
        self.assertRegex(got[0].raw, ACCEPTED)
        self.assertRegex(got[2].raw, ACCEPTED)
        self.assertIn(b'"error"', got[1].body)
        self.assert_stored([0, 2])

    def test_2c_pipelining_past_the_peek_buffer(self):
        # 100 requests in one write, some 24 KiB: more than the lane peeks at
        # once (16 KiB); then a request it hands over, and one more.
        c = self.conn()
        c.send(b"".join(post(i) for i in range(100)))
        for i in range(100):
            a = c.answer()
            self.assertIsNotNone(a, f"answer {i}: connection closed")
            self.assertRegex(a.raw, ACCEPTED, f"answer {i}")
        c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + post(100))
        self.assertEqual(statuses([c.answer(), c.answer()]),
                         ["HTTP/1.1 200 OK", "HTTP/1.1 202 Accepted"])
        self.assert_stored(range(101))

    def test_2d_half_close(self):
        # The client sends two requests and shuts down its side: both are
        # answered, then the broker closes.
        c = self.conn()
        c.send(post(0) + post(1))
        c.s.shutdown(socket.SHUT_WR)
        self.assertEqual(statuses([c.answer(), c.answer()]), ["HTTP/1.1 202 Accepted"] * 2)
        self.assertTrue(c.closed(), "closed after the answers")
        self.assert_stored(range(2))

    def test_3_split_request(self):
        c = self.conn()
        req = post(7)
        head = req[:req.index(b"\r\n\r\n") + 4]
        c.send(head)
        time.sleep(0.2)  # deliberate: the body comes in a second write
        c.send(req[len(head):])
        a = c.answer()
        self.assertIsNotNone(a, "connection closed")
        self.assertRegex(a.raw, ACCEPTED)
        self.assert_stored([7])

    def test_3b_request_in_pieces(self):
        # Three requests sent 40 bytes at a time, the pieces straddling the
        # requests' boundaries: each is answered once whole.
        c = self.conn()
        data = post(1) + post(2) + post(3)
        for k in range(0, len(data), 40):
            c.send(data[k:k + 40])
            time.sleep(0.01)
        self.assertEqual(statuses([c.answer() for _ in range(3)]),
                         ["HTTP/1.1 202 Accepted"] * 3)
        self.assert_stored([1, 2, 3])

    def test_6_client_gone_before_the_answer(self):
        # Each client sends a whole POST and closes at once: the event is
        # stored all the same, and the broker serves whoever comes next.
        ids = list(range(20))
        for i in ids:
            s = socket.create_connection(("127.0.0.1", self.b.port), timeout=TIMEOUT)
            s.sendall(post(i))
            s.close()
        want = sorted((str(i), value(i)) for i in ids)
        wait_for("the 20 events of the clients that left", lambda: self.b.stored() == want,
                 timeout=TIMEOUT)
        self.assertIsNone(self.b.proc.poll(), "broker still running")
        c = self.conn()
        c.send(post(100))
        self.assertRegex(c.answer().raw, ACCEPTED)
        self.assert_stored(ids + [100])


class TwoBrokers(unittest.TestCase):
    """A broker with the lane and one without it (the oracle), both with
    EXTRA."""

    LANE_ARGS = ("--fast-lane",)
    REF_ARGS = ("--no-fast-lane",)
    EXTRA = ()
    HOST = "127.0.0.1"

    def setUp(self):
        self.start(*self.EXTRA)

    def start(self, *extra):
        """The two brokers, both with extra; self.brokers names them."""
        self.lane = Broker(*extra, *self.LANE_ARGS, host=self.HOST)
        self.addCleanup(self.lane.cleanup)
        self.ref = Broker(*extra, *self.REF_ARGS, host=self.HOST)
        self.addCleanup(self.ref.cleanup)
        self.brokers = [("--fast-lane", self.lane), ("--no-fast-lane", self.ref)]

    def conn(self, b, source=None, host="127.0.0.1"):
        """A new connection to broker b at host (from source, another address
        of 127.0.0.0/8), closed when the test ends."""
        c = Conn(b.port, source=source, host=host)
        self.addCleanup(c.close)
        return c

    def served(self, b, i):
        """Whether a new connection to b has event i answered 202 (the
        connection is left open)."""
        try:
            c = self.conn(b)
            c.send(post(i))
            a = c.answer()
        except (ConnectionError, AssertionError):
            return False
        return a is not None and a.status == 202

    def refused(self, c):
        """{limit: count} of outpost_ingress_connections_refused_total, read
        over connection c."""
        c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        a = c.answer()
        self.assertEqual(a.status, 200, a.raw)
        return dict(re.findall(rb'^outpost_ingress_connections_refused_total\{limit="(\w+)"\} '
                               rb'(\d+)$', a.body, re.M))

    def tearDown(self):
        for b in (self.lane, self.ref):
            self.assertEqual(b.stop(), 0, "clean exit on SIGTERM:\n" + b.output())


class HandOverTest(TwoBrokers):
    """Requests the lane gives to libmicrohttpd (cases 5, 7, 8), and refusals
    it serves itself (9): each one is answered as the broker without
    --fast-lane answers it, and what each broker stores is what it answered
    202."""

    def both(self, exchange):
        """exchange(conn) -> list of answers (None: closed), run on a fresh
        connection to each broker; the two must agree (Date aside). Returns
        the lane's answers."""
        out = []
        for b in (self.lane, self.ref):
            c = self.conn(b)
            out.append((exchange(c), c))
        (lane, lc), (ref, _) = out
        self.assertEqual([a.comparable() if a else None for a in lane],
                         [a.comparable() if a else None for a in ref],
                         f"sent {b''.join(lc.sent)!r}\nlane answered {lane}\nwithout the lane {ref}")
        return lane

    def assert_stored_both(self, ids):
        for b in (self.lane, self.ref):
            self.assertEqual(b.stored(), sorted((str(i), value(i)) for i in ids), b.proc.args)

    def test_5a_expect_100_continue(self):
        def exchange(c):
            req = post(1, extra=[("Expect", "100-continue")])
            head = req[:req.index(b"\r\n\r\n") + 4]
            c.send(head)
            first = c.answer()
            if first is None or first.status != 100:
                return [first]
            c.send(req[len(head):])
            return [first, c.answer()]
        got = self.both(exchange)
        self.assertEqual(statuses(got), ["HTTP/1.1 100 Continue", "HTTP/1.1 202 Accepted"], got)
        self.assert_stored_both([1])

    def test_5b_chunked(self):
        body = value(2)
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        got = self.both(lambda c: (c.send(post(2, body=chunked, length=False,
                                                extra=[("Transfer-Encoding", "chunked")])),
                                   [c.answer()])[1])
        self.assertEqual(statuses(got), ["HTTP/1.1 202 Accepted"], got)
        self.assert_stored_both([2])

    def test_5c_query_string(self):
        got = self.both(lambda c: (c.send(post(3, path="/default/default?x=1")), [c.answer()])[1])
        self.assertEqual(statuses(got), ["HTTP/1.1 202 Accepted"], got)
        self.assert_stored_both([3])

    def test_5d_http_1_0(self):
        # An HTTP/1.0 request without keep-alive: answered, then closed.
        got = self.both(lambda c: (c.send(post(4, version="HTTP/1.0")),
                                   [c.answer(), c.answer()])[1])
        self.assertEqual(statuses(got), ["HTTP/1.1 202 Accepted", "EOF"], got)
        self.assert_stored_both([4])

    def test_5e_escaped_slash(self):
        got = self.both(lambda c: (c.send(post(5, path="/default%2Fdefault")), [c.answer()])[1])
        self.assertEqual(statuses(got), ["HTTP/1.1 202 Accepted"], got)
        self.assert_stored_both([5])

    def test_7_body_over_max_body(self):
        for b in (self.lane, self.ref):
            self.assertEqual(b.stop(), 0, b.output())
        self.start("--max-body", "1000")

        def exchange(c):
            c.send(post(6, body=b'"' + b"x" * 1998 + b'"'))
            first = c.answer()
            if first is None or first.header("Connection") == "close":
                return [first, c.answer()]
            # Kept alive: the next request on it is answered alike too.
            c.send(post(7))
            return [first, c.answer()]
        got = self.both(exchange)
        self.assertIsNotNone(got[0], "connection closed")
        self.assertEqual(got[0].status, 413, got)
        stored = [7] if got[1] and got[1].status == 202 else []
        self.assert_stored_both(stored)

    def test_8_garbage(self):
        # Whatever libmicrohttpd makes of it (it closes the connection, as of
        # 0.9.75): both brokers alike.
        self.both(lambda c: (c.send(b"HELLO\r\n\r\n"), [c.answer()])[1])
        self.assert_stored_both([])

    def test_8c_bare_cr_in_the_request_line(self):
        # A CR that no LF follows in the request line, the head ended by
        # CR LF CR LF all the same: the lane declines it. (Its parser once
        # went on without the line's end and read past its buffer: found by
        # tests/fuzz/fuzz_lane.c; AddressSanitizer stops the broker then.)
        for req in (b"POST \xff\xff\xff\xdb1\r\r\n\r\n",
                    b"POST /default/default\rHTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"):
            got = self.both(lambda c: (c.send(req), [c.answer()])[1])
            self.assertNotIn("HTTP/1.1 202 Accepted", statuses(got), got)
        self.assert_stored_both([])

    def test_8b_bare_lf_request(self):
        # A request whose lines end in LF alone is not a plain request: the
        # lane must not hold it but hand it over, and libmicrohttpd answers
        # it as without the lane.
        req = post(8).replace(b"\r\n", b"\n")
        got = self.both(lambda c: (c.send(req), [c.answer()])[1])
        self.assertEqual(statuses(got), ["HTTP/1.1 202 Accepted"], got)
        self.assert_stored_both([8])

    def test_9_refusals_the_lane_serves(self):
        # Plain POSTs the ingress refuses: the lane writes the refusal, with
        # its body and headers in their order, as libmicrohttpd does.
        cases = [
            ("unknown broker", post(9, path="/default/nope"), "HTTP/1.1 404 Not Found"),
            ("missing type", post(9).replace(b"ce-type: dev.outpost.test\r\n", b""),
             "HTTP/1.1 400 Bad Request"),
            ("format", post(9, body=b"x").replace(b"Content-Type: application/json",
                                                  b"Content-Type: application/cloudevents+avro"),
             "HTTP/1.1 415 Unsupported Media Type"),
        ]
        self.assertNotIn(b"ce-type", cases[1][1])
        for name, req, want in cases:
            with self.subTest(name):
                got = self.both(lambda c: (c.send(req), [c.answer()])[1])
                self.assertEqual(statuses(got), [want], got)
                self.assertIn(b'"error"', got[0].body)
        self.assert_stored_both([])


class LimitsTest(TwoBrokers):
    """The idle timeout and the connection limit hold for the lane's
    connections as for libmicrohttpd's: each case runs on both brokers."""

    EXTRA = ("--idle-timeout", "3", "--max-connections", "3")

    def test_10_idle_timeout(self):
        for lane, b in self.brokers:
            with self.subTest(lane):
                active, idle, silent = self.conn(b), self.conn(b), self.conn(b)
                idle.send(post(1))
                self.assertEqual(idle.answer().status, 202)
                # A request every 0.25 s for 4 s: never 3 s idle, so open
                # (a timer that did not restart would close it).
                for i in range(16):
                    active.send(post(100 + i))
                    a = active.answer()
                    self.assertIsNotNone(a, f"request {i}: closed while active")
                    self.assertEqual(a.status, 202)
                    time.sleep(0.25)
                # Idle since the 202 (idle) or since it connected (silent):
                # closed, by now or soon, with nothing written.
                for name, c in (("idle", idle), ("silent", silent)):
                    self.assertTrue(c.closed(), f"the {name} connection closed")
                self.assertTrue(active.closed(), "the active one closed once idle")
                self.assertEqual(len(b.stored()), 17)

    def test_11_connection_limit(self):
        for lane, b in self.brokers:
            with self.subTest(lane):
                held = [self.conn(b) for _ in range(3)]
                for i, c in enumerate(held):
                    c.send(post(i))
                    self.assertEqual(c.answer().status, 202)
                # The fourth is closed at once, with nothing written.
                self.assertTrue(self.conn(b).closed(), "a fourth connection closed")
                self.assertEqual(self.refused(held[1]),
                                 {b"max_connections": b"1", b"per_client": b"0"})
                held[0].close()
                # Once the broker has seen it go, a new one is served.
                n = iter(range(10, 1000))
                wait_for("a new connection served after one closed",
                         lambda: self.served(b, next(n)), timeout=TIMEOUT)
                for i, c in enumerate(held[1:]):  # the others were not disturbed
                    c.send(post(50 + i))
                    self.assertEqual(c.answer().status, 202)


class PerClientTest(TwoBrokers):
    """--max-connections-per-client 2: a client's third connection is closed
    at once with nothing written while another client's is served, the
    refusal is counted in /metrics, and a connection closed gives its place
    back, whether the lane or libmicrohttpd held it. On both brokers."""

    EXTRA = ("--max-connections-per-client", "2")

    def test_16_per_client_limit(self):
        for lane, b in self.brokers:
            with self.subTest(lane):
                posting, getting = self.conn(b), self.conn(b)
                posting.send(post(1))
                self.assertEqual(posting.answer().status, 202)
                # A GET: the lane hands its connection to libmicrohttpd.
                getting.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(getting.answer().status, 200)
                self.assertTrue(self.conn(b).closed(), "a third connection of 127.0.0.1 closed")
                other = self.conn(b, "127.0.0.2")
                other.send(post(2))
                self.assertEqual(other.answer().status, 202, "another client is served")
                self.assertEqual(self.refused(other),
                                 {b"max_connections": b"0", b"per_client": b"1"})
                # Once the broker has seen one go, a new one is served: the
                # lane's, then libmicrohttpd's.
                n = iter(range(10, 1000))
                for c in (posting, getting):
                    c.close()
                    wait_for("a new connection served after one closed",
                             lambda: self.served(b, next(n)), timeout=TIMEOUT)
                self.assertTrue(self.conn(b).closed(), "a third connection closed again")


class ClientRateTest(TwoBrokers):
    """--client-rate 1 --client-burst 4: a client POSTs 4 events at once,
    then one a second; past that 429 with Retry-After and a JSON reason,
    counted, nothing of it stored, while another client is served; a batch
    is admitted with one event's room left and leaves its client owing.
    On both brokers (the lane's POSTs and libmicrohttpd's)."""

    EXTRA = ("--client-rate", "1", "--client-burst", "4")

    def answer(self, c, req):
        c.send(req)
        return c.answer()

    def assert_429(self, a, retry_after):
        self.assertEqual(a.status, 429, a.raw)
        self.assertEqual(a.header("Retry-After"), str(retry_after), a.raw)
        self.assertEqual(a.header("Content-Type"), "application/json")
        self.assertIn(b"past its rate of 1 events/s (at most 4 at once)", a.body)

    def test_17_client_rate(self):
        for lane, b in self.brokers:
            with self.subTest(lane):
                one, two = self.conn(b), self.conn(b, "127.0.0.2")
                for i in range(4):
                    self.assertEqual(self.answer(one, post(i)).status, 202, f"event {i}")
                self.assert_429(self.answer(one, post(4)), 1)
                # Chunked: libmicrohttpd's on the lane broker too.
                chunked = post(5, length=False, extra=[("Transfer-Encoding", "chunked")])
                chunked = chunked[:chunked.index(b"\r\n\r\n") + 4] + b"9\r\n" + value(5) + \
                    b"\r\n0\r\n\r\n"
                self.assertEqual(len(value(5)), 9)
                self.assert_429(self.answer(one, chunked), 1)
                self.assertEqual(self.answer(two, post(6)).status, 202, "another client")
                # A second on, one more event's room.
                time.sleep(1.2)
                self.assertEqual(self.answer(one, post(7)).status, 202, "after a second")
                self.assert_429(self.answer(one, post(8)), 1)
                # A batch of 10 from a third client: admitted, 6 events owed.
                three = self.conn(b, "127.0.0.3")
                batch = json.dumps([{"specversion": "1.0", "id": str(100 + k), "source": "/test",
                                     "type": "dev.outpost.test", "data": k}
                                    for k in range(10)]).encode()
                a = self.answer(three, b"POST /default/default HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/cloudevents-batch+json\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (len(batch), batch))
                self.assertEqual(a.status, 202, a.raw)
                a = self.answer(three, post(9))
                self.assertEqual(a.status, 429, a.raw)
                self.assertIn(a.header("Retry-After"), ("7", "8"), a.raw)
                opts = self.answer(two, b"OPTIONS /default/default HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(opts.header("WebHook-Allowed-Rate"), "60", opts.raw)
                two.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertRegex(two.answer().body,
                                 rb'(?m)^outpost_ingress_requests_rejected_total'
                                 rb'\{reason="rate_limited"\} 4$')
                stored = [int(i) for i, _ in b.stored()]
                self.assertEqual(sorted(stored), [0, 1, 2, 3, 6, 7] + list(range(100, 110)))


class DualStackTest(TwoBrokers):
    """--listen [::]:PORT: the broker takes events over IPv6 and IPv4 alike,
    and --client-rate keeps ::1 and 127.0.0.1 apart. On both brokers."""

    HOST = "[::]"
    EXTRA = ("--client-rate", "1", "--client-burst", "2")

    def test_18_ipv6_and_ipv4(self):
        for lane, b in self.brokers:
            with self.subTest(lane):
                six, four = self.conn(b, host="::1"), self.conn(b)
                for i in range(2):
                    six.send(post(10 + i))
                    self.assertEqual(six.answer().status, 202, "over IPv6")
                six.send(post(12))
                self.assertEqual(six.answer().status, 429, "::1 past its rate")
                four.send(post(13))
                self.assertEqual(four.answer().status, 202, "127.0.0.1 a client of its own")
                six.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(six.answer().status, 200, "libmicrohttpd over IPv6")
                self.assertEqual(sorted(int(i) for i, _ in b.stored()), [10, 11, 13])


class HeaderTimeoutTest(TwoBrokers):
    """--header-timeout 2: a head that has not come whole 2 s after it began
    is answered 408 and its connection closed, however often its bytes come
    (the idle timeout alone would keep it open); a connection idle between
    requests, and a body that comes slowly after a whole head, are not timed
    by it. Each case on both brokers: the lane's POSTs, libmicrohttpd's
    other requests."""

    EXTRA = ("--header-timeout", "2")

    def trickle(self, c, first, at_most=15):
        """Sends first, then a header line whenever nothing has come for
        0.4 s, until the broker writes or closes (at most at_most s): the
        seconds from the first byte until then."""
        c.send(first)
        t0 = time.monotonic()
        c.s.settimeout(0.4)
        try:
            while time.monotonic() - t0 < at_most:
                try:
                    if not c._more() or c.buf:
                        break
                except AssertionError:  # nothing for 0.4 s: more of the head
                    c.send(b"X-Slow: y\r\n")
        except OSError:  # closed while sending: what it wrote is in buf
            pass
        finally:
            c.s.settimeout(TIMEOUT)
        return time.monotonic() - t0

    def assert_408(self, b, c, took, what):
        self.assertGreaterEqual(took, 1.8, f"{what}: cut before its 2 s")
        self.assertLess(took, 15, f"{what}: still open while its bytes kept coming")
        a = c.answer()
        self.assertIsNotNone(a, f"{what}: closed with no answer")
        self.assertEqual(a.status, 408, a.raw)
        self.assertEqual(a.header("Connection"), "close")
        self.assertEqual(a.header("Content-Type"), "application/json")
        self.assertIn(b"did not come whole within 2 s", a.body)
        self.assertTrue(c.closed(), f"{what}: closed after the 408")

    def test_14_header_timeout(self):
        for lane, b in self.brokers:
            with self.subTest(lane):
                head = post(1).split(b"\r\n\r\n")[0] + b"\r\n"
                c = self.conn(b)
                self.assert_408(b, c, self.trickle(c, head), "a POST's head")
                c = self.conn(b)
                took = self.trickle(c, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                self.assert_408(b, c, took, "a GET's head")
                st, text, _ = request(b.port, "GET", "/metrics", timeout=TIMEOUT)
                self.assertIn("\noutpost_ingress_header_timeouts_total 2\n", text)

    def test_15_idle_and_slow_bodies_are_not_timed(self):
        conns = {}
        for lane, b in self.brokers:
            idle, slow = self.conn(b), self.conn(b)
            idle.send(post(1))
            self.assertEqual(idle.answer().status, 202)
            # The head whole, the body a byte at a time over 3 s.
            whole = post(2)
            cut = whole.index(b"\r\n\r\n") + 4
            slow.send(whole[:cut])
            conns[lane] = (b, idle, slow, whole[cut:])
        for i in range(6):
            time.sleep(0.5)
            for b, idle, slow, body in conns.values():
                if i < len(body) - 1:
                    slow.send(body[i:i + 1])
        for lane, (b, idle, slow, body) in conns.items():
            with self.subTest(lane):
                slow.send(body[6:])
                a = slow.answer()
                self.assertIsNotNone(a, "a slow body after a whole head: closed")
                self.assertEqual(a.status, 202, a.raw)
                # Idle for 3 s between requests: still served.
                idle.send(post(3))
                a = idle.answer()
                self.assertIsNotNone(a, "idle 3 s between requests: closed")
                self.assertEqual(a.status, 202, a.raw)
                self.assertEqual(b.stored(), [(str(i), value(i)) for i in (1, 2, 3)])
                st, text, _ = request(b.port, "GET", "/metrics", timeout=TIMEOUT)
                self.assertIn("\noutpost_ingress_header_timeouts_total 0\n", text)


class LaneThreadsTest(unittest.TestCase):
    """--lane-threads 3: connections spread over three lane threads, each
    served on keep-alive."""

    def test_13_three_lane_threads(self):
        b = Broker("--lane-threads", "3")
        self.addCleanup(b.cleanup)
        conns = [Conn(b.port) for _ in range(6)]
        for c in conns:
            self.addCleanup(c.close)
        for k in range(5):
            for i, c in enumerate(conns):
                c.send(post(10 * i + k))
                a = c.answer()
                self.assertIsNotNone(a, f"connection {i}, request {k}: closed")
                self.assertRegex(a.raw, ACCEPTED)
        self.assertEqual(b.stored(), sorted((str(10 * i + k), value(10 * i + k))
                                            for i in range(6) for k in range(5)))
        st, text, _ = request(b.port, "GET", "/metrics", timeout=TIMEOUT)
        self.assertIn('outpost_ingress_connections{pool="fast"} 6\n', text)
        names = []
        for t in os.listdir(f"/proc/{b.proc.pid}/task"):
            with open(f"/proc/{b.proc.pid}/task/{t}/comm") as f:
                names.append(f.read().strip())
        self.assertEqual(names.count("http-fast"), 3, names)
        self.assertEqual(b.stop(), 0, b.output())


class LaneCommitsTest(unittest.TestCase):
    """The lane commits the embedded log itself, at the end of each batch
    (outpost_log_flush_commits_total counts those commits); --writer-commits
    leaves every commit to the log's writer thread."""

    def commits(self, *flags):
        """Posts 60 events over three keep-alive connections, three pipelined
        at a time; checks every answer and the log; returns (commits,
        flush_commits) from /metrics."""
        b = Broker(*flags)
        self.addCleanup(b.cleanup)
        conns = [Conn(b.port) for _ in range(3)]
        for c in conns:
            self.addCleanup(c.close)
        for k in range(0, 20, 4):
            for i, c in enumerate(conns):
                c.send(b"".join(post(100 * i + k + j) for j in range(4)))
            for i, c in enumerate(conns):
                for j in range(4):
                    a = c.answer()
                    self.assertIsNotNone(a, f"connection {i}, request {k + j}: closed")
                    self.assertRegex(a.raw, ACCEPTED, f"connection {i}, request {k + j}")
        self.assertEqual(b.stored(), sorted((str(100 * i + k), value(100 * i + k))
                                            for i in range(3) for k in range(20)))
        st, text, _ = request(b.port, "GET", "/metrics", timeout=TIMEOUT)
        self.assertEqual(st, 200)
        got = {}
        for name in ('outpost_log_commits_total{result="ok"}', "outpost_log_flush_commits_total",
                     "outpost_log_appends_total"):
            m = re.search("^" + re.escape(name) + r" (\d+)$", text, re.M)
            self.assertIsNotNone(m, f"{name} in /metrics:\n{text}")
            got[name] = int(m.group(1))
        self.assertEqual(got["outpost_log_appends_total"], 60)
        self.assertEqual(b.stop(), 0, b.output())
        return got['outpost_log_commits_total{result="ok"}'], got["outpost_log_flush_commits_total"]

    def test_14_lane_commits_its_requests(self):
        # Nothing but the lane's requests: its batches are committed by the
        # lane. The writer thread takes what is queued only when it wakes for
        # its backstop (once a second), which a run this short meets at most
        # once, between an append and its flush.
        commits, flushed = self.commits()
        self.assertGreater(flushed, 0)
        self.assertGreaterEqual(flushed, commits - 1)

    def test_14c_batch_polls(self):
        # Whether a batch is one epoll_wait or takes what came in meanwhile,
        # the lane commits its batches and answers every request
        # (tests/unit/test_httpd_fast.c shows what joins a batch).
        for polls in ("0", "64"):
            with self.subTest(polls):
                commits, flushed = self.commits("--batch-polls", polls)
                self.assertGreater(flushed, 0)
                self.assertGreaterEqual(flushed, commits - 1)

    def test_14b_writer_commits(self):
        commits, flushed = self.commits("--writer-commits")
        self.assertGreater(commits, 0)
        self.assertEqual(flushed, 0)


class SendersTest(TwoBrokers):
    """--senders-file: a POST needs a sender's bearer token (401 without
    one, with another, or with another scheme; WWW-Authenticate as RFC 6750
    says), a broker its sender may send to (403 naming its brokers), and
    each of its events a type its sender may send (403 naming the first that
    is not, by index in a batch; a batch all or nothing).
    Nothing refused is stored; OPTIONS and /healthz stay open; refusals and
    each sender's events are counted. On both brokers (the lane's POSTs and
    libmicrohttpd's chunked one)."""

    SENDERS = ("# name token type-prefixes\n"
               "detector det-token-1 dev.outpost.\n"
               "shop shop.tok~en/+== com.example.shop. com.example.cart.\n"
               "admin adm1n\n"
               "teamb tok-b to=team/b\n")

    def setUp(self):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        self.path = os.path.join(d.name, "senders")
        with open(self.path, "w") as f:
            f.write(self.SENDERS)
        self.start("--senders-file", self.path, "--broker", "default/default", "--broker", "team/b")

    def send(self, c, i, token=None, type_=None, scheme="Bearer", chunked=False,
             path="/default/default"):
        """Event i in binary mode (of type_, else dev.outpost.test) with
        token, to path over c: the answer."""
        extra = [("Authorization", f"{scheme} {token}")] if token else []
        req = post(i, path=path, extra=extra, length=not chunked)
        if type_:
            req = req.replace(b"ce-type: dev.outpost.test", b"ce-type: " + type_.encode())
        if chunked:
            req = req[:req.index(b"\r\n\r\n")] + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + \
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(value(i)), value(i))
        c.send(req)
        return c.answer()

    def send_json(self, c, media, body):
        """body (structured or batched mode, as media says) from the shop, over c: the answer."""
        c.send(b"POST /default/default HTTP/1.1\r\nHost: x\r\n"
               b"Authorization: Bearer shop.tok~en/+==\r\n"
               b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
               % (media.encode(), len(body), body))
        return c.answer()

    def assert_401(self, a, invalid):
        self.assertEqual(a.status, 401, a.raw)
        want = 'Bearer realm="outpost"' + (', error="invalid_token"' if invalid else "")
        self.assertEqual(a.header("WWW-Authenticate"), want, a.raw)
        self.assertEqual(a.header("Content-Type"), "application/json")

    def test_19_senders(self):
        for lane, b in self.brokers:
            with self.subTest(lane):
                c = self.conn(b)
                a = self.send(c, 1)
                self.assert_401(a, invalid=False)
                self.assertIn(b"send Authorization: Bearer <your token>", a.body)
                self.assert_401(self.send(c, 2, token="det-token-2"), invalid=True)
                self.assert_401(self.send(c, 3, token="det-token-1", scheme="Basic"), False)
                self.assert_401(self.send(c, 4, chunked=True), invalid=False)
                # The same connection goes on after its refusals.
                self.assertEqual(self.send(c, 5, token="det-token-1").status, 202)
                self.assertEqual(self.send(c, 6, token="det-token-1", scheme="bearer").status,
                                 202, "the scheme in any case")
                self.assertEqual(self.send(c, 7, token="det-token-1", chunked=True).status, 202)
                a = self.send(c, 8, token="shop.tok~en/+==")
                self.assertEqual(a.status, 403, a.raw)
                self.assertEqual(json.loads(a.body), {
                    "error": 'sender shop may not send events of type "dev.outpost.test" (its '
                             'types: com.example.shop.*, com.example.cart.*)',
                    "attribute": "type"})
                a = self.send(c, 9, token="shop.tok~en/+==", type_="com.example.shop.order")
                self.assertEqual(a.status, 202, a.raw)
                self.assertEqual(self.send(c, 10, token="adm1n", type_="anything").status, 202)
                # teamb may send to team/b only; the others to every broker.
                a = self.send(c, 12, token="tok-b")
                self.assertEqual(a.status, 403, a.raw)
                self.assertEqual(json.loads(a.body), {
                    "error": "sender teamb may not send to broker default/default (its brokers: "
                             "team/b)"})
                self.assertEqual(self.send(c, 13, token="tok-b", path="/team/b").status, 202)
                self.assertEqual(self.send(c, 14, token="adm1n", path="/team/b").status, 202)
                # A batch: the second event's type is not the shop's.
                batch = json.dumps([{"specversion": "1.0", "id": str(100 + k), "source": "/test",
                                     "type": t} for k, t in
                                    enumerate(["com.example.cart.add", "dev.outpost.x"])]).encode()
                a = self.send_json(c, "application/cloudevents-batch+json", batch)
                self.assertEqual(a.status, 403, a.raw)
                self.assertEqual(json.loads(a.body)["index"], 1, a.raw)
                # Structured mode is held to the same types.
                ev = json.dumps({"specversion": "1.0", "id": "11", "source": "/test",
                                 "type": "dev.outpost.y"}).encode()
                a = self.send_json(c, "application/cloudevents+json", ev)
                self.assertEqual(a.status, 403, a.raw)
                self.assertNotIn("index", json.loads(a.body))
                c.send(b"OPTIONS /default/default HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(c.answer().status, 200, "OPTIONS needs no token")
                c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                text = c.answer().body
                for reason, n in ((b"unauthorized", 4), (b"forbidden", 4)):
                    self.assertRegex(text, rb'(?m)^outpost_ingress_requests_rejected_total'
                                     rb'\{reason="%s"\} %d$' % (reason, n))
                for sender, n in ((b"detector", 3), (b"shop", 1), (b"admin", 2), (b"teamb", 1)):
                    self.assertRegex(text, rb'(?m)^outpost_ingress_sender_events_total'
                                     rb'\{sender="%s"\} %d$' % (sender, n))
                self.assertEqual(sorted(int(i) for i, _ in b.stored()), [5, 6, 7, 9, 10, 13, 14])
                # The token goes nowhere near the log.
                db = sqlite3.connect(b.data)
                try:
                    rows = db.execute("SELECT headers, value FROM records").fetchall()
                finally:
                    db.close()
                self.assertFalse([r for r in rows for col in r
                                  for tok in (b"det-token-1", b"shop.tok~en", b"adm1n", b"tok-b")
                                  if tok in bytes(col)], "a token in the log")


    def test_21_senders_read_again(self):
        """The file replaced (a new file renamed over it, as Kubernetes
        updates a Secret): within --senders-file's look (2 s), at the next
        POST, the new tokens hold and the old ones do not; a broken file
        leaves the senders as they were; counted either way. Meanwhile the
        detector's token, in both files, POSTs without a pause: every event
        of it is counted once, across the tables."""
        conns = {lane: self.conn(b) for lane, b in self.brokers}
        for c in conns.values():
            self.assertEqual(self.send(c, 1, token="adm1n").status, 202)
        stop, steady = threading.Event(), {}

        def post_steadily(lane, b):
            c, n = Conn(b.port), 0
            try:
                while not stop.is_set():
                    n += self.send(c, 1000 + n, token="det-token-1").status == 202
            finally:
                c.close()
                steady[lane] = n
        threads = [threading.Thread(target=post_steadily, args=lb) for lb in self.brokers]
        for t in threads:
            t.start()

        def replace(text):
            with open(self.path + ".new", "w") as f:
                f.write(text)
            os.rename(self.path + ".new", self.path)
        replace("admin adm2n\ndetector det-token-1 dev.outpost.\n")
        time.sleep(2.5)
        for lane, c in conns.items():
            with self.subTest(lane):
                # The POST that looks is answered by the new table already.
                self.assertEqual(self.send(c, 2, token="adm1n").status, 401)
                self.assertEqual(self.send(c, 3, token="adm2n").status, 202)
        replace("admin\n")
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join()
        for lane, c in conns.items():
            with self.subTest(lane):
                self.assertEqual(self.send(c, 4, token="adm2n").status, 202, "the file refused")
                c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                text = c.answer().body
                for result, n in ((b"ok", 1), (b"failed", 1)):
                    self.assertRegex(text, rb'(?m)^outpost_ingress_senders_reloads_total'
                                     rb'\{result="%s"\} %d$' % (result, n))
                # Counts go on across the reload, each event counted once.
                self.assertRegex(text, rb'(?m)^outpost_ingress_sender_events_total'
                                 rb'\{sender="admin"\} 3$')
                self.assertGreater(steady[lane], 100)
                self.assertRegex(text, rb'(?m)^outpost_ingress_sender_events_total'
                                 rb'\{sender="detector"\} %d$' % steady[lane])
        for lane, b in self.brokers:
            self.assertIn("read again: 2 senders", b.output())
            self.assertIn("still the 2 senders read before", b.output())


class FlagsTest(unittest.TestCase):
    """The flags of the lane and of the limits refuse what they cannot do."""

    def test_12_bad_flags_exit_2(self):
        cases = [(("--fast-lane", "--epoll"), "--fast-lane works with --hybrid"),
                 (("--thread-per-connection", "--fast-lane"), "--fast-lane works with --hybrid"),
                 (("--idle-timeout", "x"), "--idle-timeout wants seconds, not 'x'"),
                 (("--idle-timeout", "-1"), "--idle-timeout wants seconds, not '-1'"),
                 (("--max-connections", "0"), "bad number '0'"),
                 (("--max-connections-per-client", "x"),
                  "--max-connections-per-client wants a count, not 'x'"),
                 (("--max-connections-per-client", "-2"),
                  "--max-connections-per-client wants a count, not '-2'"),
                 (("--client-rate", "1000001"),
                  "--client-rate wants 0 to 1000000 events a second, not '1000001'"),
                 (("--client-burst", "0", "--client-rate", "5"),
                  "--client-burst wants 1 to 1000000000 events, not '0'"),
                 (("--client-burst", "5"), "--client-burst needs a --client-rate"),
                 (("--lane-threads", "0"), "bad number '0'"),
                 (("--batch-polls", "65"), "--batch-polls wants 0 to 64, not '65'"),
                 (("--batch-polls", "-1"), "--batch-polls wants 0 to 64, not '-1'")]
        with tempfile.TemporaryDirectory() as d:
            data = os.path.join(d, "broker.db")
            for args, want in cases:
                with self.subTest(args):
                    p = subprocess.run([OUTPOST, "broker", "--listen", "127.0.0.1:0", "--data",
                                        data, *args], capture_output=True, text=True, timeout=30)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn(want, p.stderr)
            self.assertFalse(os.path.exists(data), "nothing started")

    def test_20_bad_senders_file_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            data, path = os.path.join(d, "broker.db"), os.path.join(d, "senders")
            for text, want in [(None, f"--senders-file {path}: No such file or directory"),
                               ("", f"--senders-file {path}: no senders"),
                               ("a t\nb\n", f"--senders-file {path}:2: want NAME TOKEN")]:
                with self.subTest(text):
                    if text is not None:
                        with open(path, "w") as f:
                            f.write(text)
                    p = subprocess.run([OUTPOST, "broker", "--listen", "127.0.0.1:0", "--data",
                                        data, "--senders-file", path],
                                       capture_output=True, text=True, timeout=30)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn(want, p.stderr)
            self.assertFalse(os.path.exists(data), "nothing started")


class MidConnectionTest(unittest.TestCase):
    """Case 4: a connection the lane served goes to libmicrohttpd at its
    first request the lane does not serve, and is served on from there."""

    EXTRA = ()
    POOL = "poll"  # the pool of libmicrohttpd that takes it

    HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    WANT = ["HTTP/1.1 202 Accepted", "HTTP/1.1 200 OK", "HTTP/1.1 202 Accepted"]

    def setUp(self):
        self.b = Broker("--fast-lane", *self.EXTRA)
        self.addCleanup(self.b.cleanup)
        self.c = Conn(self.b.port)
        self.addCleanup(self.c.close)

    def tearDown(self):
        self.assertEqual(self.b.stop(), 0, "clean exit on SIGTERM:\n" + self.b.output())

    def check(self, got, before):
        self.assertEqual(statuses(got), self.WANT, f"sent {b''.join(self.c.sent)!r}\ngot {got}")
        self.assertIn(b'"status":"ok"', got[1].body)
        self.assertEqual(self.b.stored(), [("1", value(1)), ("2", value(2))])
        # libmicrohttpd's pool holds it now, with /metrics' own connection.
        want = dict(before)
        want[self.POOL] += 1
        wait_for(f"libmicrohttpd's {self.POOL} pool to hold the handed-over connection",
                 lambda: self.b.mhd_connections() == want, timeout=TIMEOUT)

    def held(self):
        """What libmicrohttpd holds with the test's connection still the lane's."""
        return {"poll": 1, "epoll": 0}

    def test_4_post_get_post(self):
        before = self.held()
        got = []
        for req in (post(1), self.HEALTHZ, post(2)):
            self.c.send(req)
            got.append(self.c.answer())
        self.check(got, before)

    def test_4b_pipelined(self):
        before = self.held()
        self.c.send(post(1) + self.HEALTHZ + post(2))
        self.check([self.c.answer() for _ in range(3)], before)


class MidConnectionEpollTest(MidConnectionTest):
    """The same with libmicrohttpd's epoll pool taking the connection: the
    poll pool (--poll-connections 1) is full with a connection of its own."""

    EXTRA = ("--poll-connections", "1")
    POOL = "epoll"

    def held(self):
        holder = Conn(self.b.port)
        self.addCleanup(holder.close)
        holder.send(self.HEALTHZ)
        self.assertEqual(holder.answer().status, 200)
        # The holder in the poll pool, /metrics' connection in the epoll pool.
        want = {"poll": 1, "epoll": 1}
        wait_for("the holder in the poll pool", lambda: self.b.mhd_connections() == want,
                 timeout=TIMEOUT)
        return want


if __name__ == "__main__":
    OUTPOST = os.path.abspath(sys.argv.pop(1))  # the brokers run in directories of their own
    unittest.main(verbosity=2)
