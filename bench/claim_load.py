#!/usr/bin/env python3
"""claim_load.py — the measuring half of bench_claim.sh (see bench/README.md):
drives the Labs REST API of a running cluster post and prints what it saw.
bench_claim.sh starts the broker and the posts, writes the templates and
tokens, and cleans up; this file only talks HTTP.

  1. claim latency: claims of a template whose pool is held at N warm,
     alternating with cold claims, each the first claim of a template of its
     own (a pool cannot be held at 0: pool.max is at least 1, and a claimed
     template keeps one warm); p50/p99 of each, and cold over warm;
  2. reclaim delay: claims of a template with a short idleTimeout, left
     alone; how long past the idle deadline each is gone;
  3. pool size over time: claims at a rate that changes in phases; the warm
     count, the pool's target and the claimed count every second, as a
     table, a CSV and an ASCII plot.

The pool's events reach a small HTTP sink here through a trigger on the
broker (PUT /v1/triggers): the `claimed` event holds the server's latency of
a cold claim (its 202 has none), `idle` and `reclaimed` the pool's view of
a reclaim, `scaled` the pool's target.

Exit status: 0 when every claim and release succeeded, 1 otherwise (the
figures are printed either way), 2 on bad arguments.
"""
import argparse
import csv
import datetime
import http.client
import http.server
import json
import math
import os
import queue
import signal
import sys
import threading
import time

A = None  # the parsed arguments
failures = []


def fail(what):
    failures.append(what)
    print(f"  FAILED: {what}", flush=True)


# ----------------------------------------------------------------------- HTTP


def call(port, method, path, token=None, body=None, ctype="application/json", timeout=60):
    """(status, parsed JSON or text or None, headers, seconds): one request on
    a fresh connection, timed from before the connect to the last byte read
    (what a client without keep-alive waits). Status 0 when nothing answers."""
    h = {"Authorization": "Bearer " + token} if token else {}
    if body is not None:
        h["Content-Type"] = ctype
    t = time.perf_counter()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
    except OSError as e:
        return 0, str(e), {}, time.perf_counter() - t
    dt = time.perf_counter() - t
    text = data.decode(errors="replace")
    try:
        j = json.loads(text) if text and "json" in (r.getheader("Content-Type") or "") else text
    except ValueError:
        j = text
    return r.status, j, dict(r.getheaders()), dt


def labs(method, path, tenant, timeout=60):
    return call(A.cluster_port, method, "/v1/labs" + path, token=A.tokens[tenant], timeout=timeout)


def capacity():
    st, j, _, _ = call(A.node_port, "GET", "/v1/capacity", timeout=10)
    return j if st == 200 and isinstance(j, dict) else None


def warm_of(tpl):
    c = capacity()
    return (c.get("warm") or {}).get(tpl, 0) if c else -1


def claimed_of(tpl):
    st, j, _, _ = call(A.node_port, "GET", f"/v1/environments?namespace={A.namespace}&state=claimed",
                       timeout=10)
    if st != 200 or not isinstance(j, dict):
        return -1
    return sum(1 for e in j.get("environments", []) if e.get("template") == tpl)


def follow(tpl, name, tenant):
    """Long-polls the progress of a cold start until it ends: True when ready."""
    end = time.monotonic() + 180
    while time.monotonic() < end:
        st, text, _, _ = labs("GET", f"/{tpl}/environments/{name}/progress", tenant, timeout=90)
        if st != 200 or not isinstance(text, str):
            return False
        evs = [json.loads(l[6:]) for l in text.splitlines() if l.startswith("data: ")]
        if evs and evs[-1].get("ready"):
            return True
        if evs and evs[-1].get("failed"):
            return False
        # The long poll ended at its 60 s limit without the last event: again.
    return False


def claim(tpl, tenant):
    """One claim, followed until the tenant can use the environment. A dict:
    ok, status (201 warm / 202 cold start), name, warm, elapsed_us (201 only),
    first_s (the first answer), ready_s (until ready), t (monotonic start)."""
    t = time.perf_counter()
    m = time.monotonic()
    st, j, _, first = labs("POST", f"/{tpl}/environments", tenant, timeout=180)
    r = {"ok": False, "status": st, "tpl": tpl, "tenant": tenant, "first_s": first, "t": m,
         "warm": False, "name": None, "elapsed_us": None, "ready_s": None}
    if st not in (201, 202) or not isinstance(j, dict):
        r["error"] = j
        return r
    r["name"], r["warm"] = j.get("name"), bool(j.get("warm"))
    if st == 201:
        r["ok"], r["ready_s"], r["elapsed_us"] = j.get("status") == "ready", first, j.get("elapsed_us")
        return r
    r["ok"] = follow(tpl, r["name"], tenant)
    r["ready_s"] = time.perf_counter() - t
    return r


def release(r):
    st, j, _, _ = labs("DELETE", f"/{r['tpl']}/environments/{r['name']}", r["tenant"])
    if st != 204:
        fail(f"DELETE {r['tpl']}/{r['name']} answered {st}: {j}")
        return False
    return True


def wait_until(what, fn, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(step)
    fail(f"timed out after {timeout} s waiting for {what}")
    return False


# --------------------------------------------------------------- event sink


class Sink:
    """Events the broker delivers to us: (type, subject, time as a unix
    float, data) in arrival order."""

    def __init__(self):
        self.events, self.lock = [], threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                ct = self.headers.get("Content-Type") or ""
                try:
                    if ct.startswith("application/cloudevents+json"):
                        ev = json.loads(body)
                        typ, subj, when, data = ev.get("type"), ev.get("subject"), ev.get("time"), ev.get("data")
                    else:
                        typ, subj, when = (self.headers.get(k) for k in ("ce-type", "ce-subject", "ce-time"))
                        data = json.loads(body) if body else None
                    sink.add(typ, subj, when, data)
                except ValueError:
                    pass
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, typ, subj, when, data):
        try:
            ts = datetime.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
        except (AttributeError, ValueError):
            ts = None
        with self.lock:
            self.events.append((typ, subj, ts, data if isinstance(data, dict) else {}))

    def find(self, typ, subject=None):
        with self.lock:
            return [e for e in self.events if e[0] == typ and (subject is None or e[1] == subject)]

    def wait_for(self, typ, subjects, timeout):
        """Waits until an event of typ has come for every subject; True if so."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            seen = {e[1] for e in self.find(typ)}
            if all(s in seen for s in subjects):
                return True
            time.sleep(0.05)
        return False


def subscribe(sink):
    yaml = f"""apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: bench-claim
  namespace: default
spec:
  broker: default
  filters: [{{prefix: {{type: dev.outpost.}}}}]
  subscriber:
    uri: http://127.0.0.1:{sink.port}/
"""
    st, j, _, _ = call(A.broker_port, "PUT", "/v1/triggers", body=yaml, ctype="application/yaml")
    if st not in (200, 201):
        fail(f"PUT /v1/triggers answered {st}: {j}")


# ----------------------------------------------------------------- figures


def pct(xs, p):
    """The p-th percentile, nearest rank (p99 of 100 samples is the 99th)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(x):
    return "-" if x is None or x != x else f"{x:.1f}"


def row(label, xs):
    print(f"  {label:<48} {len(xs):>4} {ms(pct(xs, 50)):>9} {ms(pct(xs, 99)):>9} "
          f"{ms(max(xs) if xs else None):>9}")


def header(unit="ms"):
    print(f"  {'':<48} {'n':>4} {'p50 ' + unit:>9} {'p99 ' + unit:>9} {'max ' + unit:>9}")


# ------------------------------------------------------ 1. claim latency


def bench_latency(sink):
    n, N = A.claims, A.warm
    print(f"\n== 1. claim latency: {n} warm claims of '{A.tpl_warm}' (pool min=max={N}) alternating "
          f"with {n} cold claims, each the first claim of a template of its own "
          f"('{A.cold_prefix}001'...; pool min 0, max 1)", flush=True)
    if not wait_until(f"{N} warm environments of {A.tpl_warm}", lambda: warm_of(A.tpl_warm) >= N, 180):
        return None
    warm, cold, not_warm, refill, waited_before = [], [], [], [], 0
    tenant = "bench"
    for i in range(n):
        order = ("warm", "cold") if i % 2 == 0 else ("cold", "warm")
        for kind in order:
            if kind == "warm":
                # Each warm claim finds the pool full: a claim that is not
                # warm then is the pool's doing, not the bench's pace.
                if warm_of(A.tpl_warm) < N:
                    waited_before += 1
                    if not wait_until("the warm pool to refill", lambda: warm_of(A.tpl_warm) >= N, 60):
                        return None
                r = claim(A.tpl_warm, tenant)
                if not r["ok"]:
                    fail(f"warm claim {i}: {r['status']} {r.get('error')}")
                    if r["name"]:
                        release(r)
                    continue
                (warm if r["warm"] and r["status"] == 201 else not_warm).append(r)
                # How long the pool takes to be full again (claim answered → N warm).
                t = time.perf_counter()
                if wait_until("the warm pool to refill", lambda: warm_of(A.tpl_warm) >= N, 60, 0.01):
                    refill.append(time.perf_counter() - t)
                release(r)
            else:
                # A template never claimed: its pool's target is 0 (no
                # demand), so nothing is warm or being made for it.
                tpl = f"{A.cold_prefix}{i + 1:03d}"
                r = claim(tpl, tenant)
                if not r["ok"]:
                    fail(f"cold claim {i}: {r['status']} {r.get('error')}")
                    if r["name"]:
                        release(r)
                    continue
                if r["warm"] or r["status"] != 202:
                    fail(f"cold claim {i} of a template never claimed answered {r['status']} "
                         f"warm={r['warm']}")
                cold.append(r)
                release(r)
                # The claim set its pool's target to 1: that refill is under
                # way; let it end before the next measurement.
                wait_until(f"the refill of {tpl}", lambda: warm_of(tpl) >= 1, 60)
        if (i + 1) % max(1, n // 5) == 0:
            print(f"  {i + 1}/{n} pairs", flush=True)
    # The server's latency of a cold claim is in its `claimed` event.
    sink.wait_for("dev.outpost.environment.claimed", [r["name"] for r in cold], 15)
    ev = {e[1]: e[3] for e in sink.find("dev.outpost.environment.claimed")}
    cold_srv = [ev[r["name"]]["latency_us"] / 1000 for r in cold if "latency_us" in ev.get(r["name"], {})]
    cold_make = [ev[r["name"]]["cold_start_ms"] for r in cold if "cold_start_ms" in ev.get(r["name"], {})]
    warm_ev = [ev[r["name"]]["latency_us"] / 1000 for r in warm if "latency_us" in ev.get(r["name"], {})]

    warm_srv = [r["elapsed_us"] / 1000 for r in warm if r["elapsed_us"] is not None]
    warm_cli = [r["ready_s"] * 1000 for r in warm]
    cold_first = [r["first_s"] * 1000 for r in cold]
    cold_ready = [r["ready_s"] * 1000 for r in cold]
    print()
    header()
    row("warm: client, POST → 201 (ready)", warm_cli)
    row("warm: server, elapsed_us of the 201", warm_srv)
    row("cold: client, POST → 202 (first answer)", cold_first)
    row("cold: client, POST → progress ready", cold_ready)
    row("cold: server, latency_us of `claimed` event", cold_srv)
    row("cold: server, cold_start_ms (create+start)", cold_make)
    made = [e[3]["duration_ms"] for e in sink.find("dev.outpost.environment.ready")
            if e[3].get("template") == A.tpl_warm and e[3].get("for") == "pool"]
    row("warm pool refill: create+start (`ready` event)", made)
    row("warm pool refilled (201 → N warm again)", [x * 1000 for x in refill])
    out = {
        "warm_cli": (pct(warm_cli, 50), pct(warm_cli, 99)),
        "warm_srv": (pct(warm_srv, 50), pct(warm_srv, 99)),
        "cold_ready": (pct(cold_ready, 50), pct(cold_ready, 99)),
        "cold_srv": (pct(cold_srv, 50), pct(cold_srv, 99)),
    }
    print()
    for what, c, w in (("client wall time (until ready)", "cold_ready", "warm_cli"),
                       ("server (cold: claimed event; warm: elapsed_us)", "cold_srv", "warm_srv")):
        r50 = out[c][0] / out[w][0] if out[w][0] else float("nan")
        r99 = out[c][1] / out[w][1] if out[w][1] else float("nan")
        print(f"  cold/warm, {what}: p50 {r50:.1f}x, p99 {r99:.1f}x")
    print(f"  warm claims that were not warm: {len(not_warm)} of {len(warm) + len(not_warm)}"
          + (f" ({', '.join(str(r['status']) for r in not_warm)})" if not_warm else ""))
    if waited_before:
        print(f"  warm pool not full before a warm claim (bench waited): {waited_before} times")
    if warm_ev and warm_srv:
        print(f"  (warm: the `claimed` events' latency_us p50 {pct(warm_ev, 50):.2f} ms, "
              f"the same figure as elapsed_us)")
    missing = len(cold) - len(cold_srv)
    if missing:
        print(f"  ({missing} cold claims' `claimed` event did not arrive)")
    return out


# ------------------------------------------------------ 2. reclaim delay


def bench_reclaim(sink):
    k, tpl = A.reclaims, A.tpl_idle
    st, j, _, _ = labs("GET", "", "bench")
    tmo = next((t["idle_timeout_ms"] for t in (j or {}).get("templates", []) if t["name"] == tpl), None)
    print(f"\n== 2. reclaim delay: {k} claims of '{tpl}' (idleTimeout {tmo} ms), {A.stagger} s apart, "
          f"left alone; GET every {A.poll * 1000:.0f} ms until 404", flush=True)
    if tmo is None:
        fail(f"template {tpl} not in GET /v1/labs")
        return None
    rs, threads = [], []

    def watch(r):
        # The idle deadline, from the server's own view of the last activity.
        st, j, _, _ = labs("GET", f"/{tpl}/environments/{r['name']}", r["tenant"])
        if st != 200 or "last_activity_unix_ms" not in j:
            fail(f"GET {r['name']}: {st} {j}")
            return
        r["deadline"] = (j["last_activity_unix_ms"] + tmo) / 1000
        time.sleep(max(0, r["deadline"] - time.time() - 0.2))
        end = r["deadline"] + 60
        while time.time() < end:
            st, _, _, _ = labs("GET", f"/{tpl}/environments/{r['name']}", r["tenant"], timeout=10)
            now = time.time()
            if st == 404:
                r["gone"] = now
                return
            time.sleep(A.poll)
        fail(f"{r['name']} still there 60 s past its idle deadline")

    for i in range(k):
        tenant = f"s{i + 1:02d}"
        r = claim(tpl, tenant)
        if not r["ok"]:
            fail(f"claim {i} of {tpl}: {r['status']} {r.get('error')}")
        else:
            rs.append(r)
            th = threading.Thread(target=watch, args=(r,))
            th.start()
            threads.append(th)
        time.sleep(A.stagger)
    for th in threads:
        th.join()
    names = [r["name"] for r in rs]
    sink.wait_for("dev.outpost.environment.reclaimed", names, 15)
    idle = {e[1]: e for e in sink.find("dev.outpost.environment.idle")}
    recl = {e[1]: e for e in sink.find("dev.outpost.environment.reclaimed")}
    cli = [(r["gone"] - r["deadline"]) * 1000 for r in rs if "gone" in r]
    noticed = [idle[n][3]["idle_ms"] - idle[n][3]["idle_timeout_ms"] for n in names if n in idle]
    removed = [recl[n][3]["remove_ms"] for n in names if n in recl]
    ev_gone = [(recl[n][2] - r["deadline"]) * 1000 for r in rs for n in [r["name"]]
               if n in recl and recl[n][2] and "deadline" in r]
    print()
    header()
    row("client: idle deadline → GET answers 404", cli)
    row("server: deadline → `reclaimed` event's time", ev_gone)
    row("server: idle_ms − timeout in the `idle` event", noticed)
    row("server: remove_ms in the `reclaimed` event", removed)
    reasons = {recl[n][3].get("reason") for n in names if n in recl}
    if reasons - {"idle"}:
        print(f"  reclaimed for reasons {sorted(reasons)}")
    return {"cli": cli, "ev": ev_gone}


# --------------------------------------------- 3. pool size over time


def schedule():
    """[(phase, seconds, claims per second, hold seconds)]."""
    # A class: everyone presses "start" within two seconds, faster than the
    # pool makes environments (7 to 9 a second here, one at a time). The
    # quiet before the second class is longer than the predictor's burst gap
    # (60 s), so that the first class (with the steady claims that continued
    # it) ends as a burst the pool has learnt from.
    if A.quick:
        return [("quiet", 3, 0, 0), ("class", 1, 6, 6), ("steady", 6, 0.5, 3), ("quiet", 5, 0, 0)]
    return [("quiet", 10, 0, 0), ("class", 2, 10, 30), ("steady", 40, 0.5, 10),
            ("quiet", 65, 0, 0), ("class", 2, 10, 15), ("quiet", 20, 0, 0)]


def bench_pool(sink):
    tpl, sched = A.tpl_load, schedule()
    total = sum(p[1] for p in sched)
    print(f"\n== 3. pool size over time: '{tpl}' (pool min 0, max {A.load_max}, the predictor "
          f"decides), {total} s in phases:", flush=True)
    for name, secs, rate, hold in sched:
        print(f"  {name:<7} {secs:>3} s  {rate:g} claims/s" + (f", each held {hold} s" if rate else ""))
    tenants = queue.Queue()
    for i in range(A.tenants):
        tenants.put(f"s{i + 1:02d}")
    claims, lock, workers, launched = [], threading.Lock(), [], []
    t0 = time.monotonic()
    wall0 = time.time()

    def worker(hold):
        tenant = tenants.get()
        r = claim(tpl, tenant)
        with lock:
            claims.append(r)
        if r["ok"]:
            time.sleep(hold)
            release(r)
        else:
            fail(f"claim of {tpl} for {tenant}: {r['status']} {r.get('error')}")
            if r["name"]:
                release(r)
        tenants.put(tenant)

    def driver():
        at = t0
        for name, secs, rate, hold in sched:
            n = round(rate * secs)
            for i in range(n):
                when = at + i / rate
                time.sleep(max(0, when - time.monotonic()))
                th = threading.Thread(target=worker, args=(hold,))
                launched.append(time.monotonic())
                th.start()
                workers.append(th)
            at += secs

    # The warm count ten times a second as well: a class can empty the pool
    # and the pool refill it between two samples a second apart.
    fine, stop = [], threading.Event()

    def sampler():
        while not stop.is_set():
            w = warm_of(tpl)
            fine.append((time.monotonic() - t0, w))
            stop.wait(0.1)

    smp = threading.Thread(target=sampler, daemon=True)
    smp.start()
    drv = threading.Thread(target=driver)
    drv.start()
    bounds, acc = [], 0
    for name, secs, _, _ in sched:
        bounds.append((acc, acc + secs, name))
        acc += secs

    def target_at(at):
        """The pool's target at unix time at, from its `scaled` events so far."""
        cur = {}
        for e in sink.find("dev.outpost.pool.scaled"):
            if e[3].get("template") == tpl and e[2] is not None and e[2] <= at:
                cur = e[3]
        return cur.get("new"), cur.get("why", "")

    print("\n  claims: made in that second; warm, target, claimed: at its end; min: the fewest warm"
          "\n  seen in it (sampled every 0.1 s). target: the pool's, from its `scaled` events, which"
          "\n  come only when it changes: why is the reason given then.")
    print(f"  {'t s':>4} {'phase':<7} {'claims':>6} {'warm':>5} {'min':>5} {'target':>6} {'why':<9} "
          f"{'claimed':>7}")
    rows, sec = [], 1
    while True:
        time.sleep(max(0, t0 + sec - time.monotonic()))
        w, c = warm_of(tpl), claimed_of(tpl)
        done = sec >= total and not drv.is_alive() and not any(th.is_alive() for th in workers)
        n = sum(1 for x in launched if sec - 1 <= x - t0 < sec)
        wmin = min([w] + [x[1] for x in list(fine) if sec - 1 <= x[0] < sec and x[1] >= 0])
        phase = next((b[2] for b in bounds if b[0] <= sec - 1 < b[1]), "drain")
        rows.append({"t": sec, "phase": phase, "n": n, "w": w, "wmin": wmin, "c": c})
        # The event of a change just before the sample may still be on its way.
        tg, why = target_at(wall0 + sec)
        print(f"  {sec:>4} {phase:<7} {n:>6} {w:>5} {wmin:>5} {'-' if tg is None else tg:>6} {why:<9} "
              f"{c:>7}", flush=True)
        sec += 1
        if done or sec > total + 120:
            break
    stop.set()
    drv.join()
    for th in workers:
        th.join()
    # Which claims were cold is known once answered.
    for r in claims:
        s = int(r["t"] - t0)
        if 0 <= s < len(rows):
            rows[s]["cold"] = rows[s].get("cold", 0) + (not r["warm"])
    time.sleep(1)  # the last `scaled` events
    for rw in rows:
        rw["target"], rw["why"] = target_at(wall0 + rw["t"])
    path = os.path.join(A.out, "pool_over_time.csv")
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["t_s", "phase", "claims", "cold_claims", "warm", "warm_min", "target",
                     "why_at_change", "claimed"])
        for rw in rows:
            wr.writerow([rw["t"], rw["phase"], rw["n"], rw.get("cold", 0), rw["w"], rw["wmin"],
                         "" if rw["target"] is None else rw["target"], rw["why"], rw["c"]])
    print(f"  -> {path} (with the cold claims of each second)")
    plot(rows, sched)
    by_phase = {}
    for r in claims:
        ph = next((b[2] + str(i) for i, b in enumerate(bounds) if b[0] <= r["t"] - t0 < b[1]), "?")
        d = by_phase.setdefault(ph, [0, 0, []])
        d[0] += 1
        d[1] += not r["warm"]
        if r["ready_s"] is not None:
            d[2].append(r["ready_s"] * 1000)
    print("\n  claims by phase (client wall time until ready):")
    header()
    for i, (name, _, _, _) in enumerate(sched):
        d = by_phase.get(name + str(i))
        if d:
            row(f"{name} (phase {i + 1}): {d[1]} of {d[0]} cold", d[2])
    return rows


def plot(rows, sched):
    """Warm environments (# throughout, + at the sample only) with the pool's
    target (-) and the claimed count (o), and below, the claims made (|);
    one column per second, or per few seconds for long runs."""
    width = 100
    b = max(1, math.ceil(len(rows) / width))
    cols = [rows[i:i + b] for i in range(0, len(rows), b)]
    warm = [c[-1]["w"] for c in cols]
    wmin = [min(r["wmin"] for r in c) for c in cols]
    tgt = [c[-1]["target"] for c in cols]
    clm = [c[-1]["c"] for c in cols]
    n = [sum(r.get("n", 0) for r in c) for c in cols]
    top = max([1] + warm + [t for t in tgt if t is not None] + clm)
    print(f"\n  one column = {b} s")
    for y in range(top, 0, -1):
        line = ""
        for i in range(len(cols)):
            if clm[i] == y:
                ch = "@" if warm[i] >= y else "o"
            elif warm[i] >= y:
                ch = "#" if wmin[i] >= y else "+"
                ch = {"#": "=", "+": "*"}[ch] if tgt[i] == y else ch
            else:
                ch = "-" if tgt[i] == y else " "
            line += ch
        print(f"  {y:>4} |{line}")
    print("       +" + "-" * len(cols))
    # Each phase's name from its first column, cut to fit before the next.
    marks, at = [" "] * len(cols), 0
    for name, secs, _, _ in sched:
        col, room = at // b, max(1, secs // b - 1)
        for j, ch in enumerate(name[:room]):
            if col + j < len(marks):
                marks[col + j] = ch
        at += secs
    print("        " + "".join(marks))
    step = max(1, math.ceil(max(n + [1]) / 6))
    print(f"\n  claims made per column (|, a row = {step})")
    for y in range(math.ceil(max(n + [1]) / step), 0, -1):
        print(f"  {y * step:>4} |" + "".join("|" if v > (y - 1) * step else " " for v in n))
    print("       +" + "-" * len(cols))
    print("  #: warm throughout the column; +: warm when sampled at its end, not throughout (a class\n"
          "  emptied the pool and it refilled); -: the pool's target (=, *: warm up to it); o: claimed\n"
          "  (@: where the warm bar reaches it)")


# ---------------------------------------------------------------------- main


def main():
    global A
    # Ctrl-C or a TERM ends the run at once, threads and all (Python would
    # otherwise wait for the claims' threads): bench_claim.sh cleans up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cluster-port", type=int, required=True)
    ap.add_argument("--node-port", type=int, required=True)
    ap.add_argument("--broker-port", type=int, required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--tokens-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--claims", type=int, default=100)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--reclaims", type=int, default=6)
    ap.add_argument("--stagger", type=float, default=0.5)
    ap.add_argument("--poll", type=float, default=0.05)
    ap.add_argument("--tenants", type=int, default=40)
    ap.add_argument("--load-max", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="latency,reclaim,pool")
    A = ap.parse_args()
    A.tpl_warm, A.cold_prefix, A.tpl_idle, A.tpl_load = "warm", "cold-", "idle", "load"
    A.tokens = {}
    with open(A.tokens_file) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                t, tok = line.split()
                A.tokens[t] = tok
    os.makedirs(A.out, exist_ok=True)
    sink = Sink()
    subscribe(sink)
    only = set(A.only.split(","))
    if "latency" in only:
        bench_latency(sink)
    if "reclaim" in only:
        bench_reclaim(sink)
    if "pool" in only:
        bench_pool(sink)
    with open(os.path.join(A.out, "events.jsonl"), "w") as f:
        with sink.lock:
            for e in sink.events:
                f.write(json.dumps({"type": e[0], "subject": e[1], "time": e[2], "data": e[3]}) + "\n")
    if failures:
        print(f"\nclaim_load: {len(failures)} failures (above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
