#!/usr/bin/env python3
"""Hostile-load checks against running procuhelp-server processes (loopback only).

Driven by scripts/load.sh, which builds and starts the servers, seeds the demo data and
passes everything this script needs on its command line. Every scenario is bounded in
time and connections, talks only to 127.0.0.1, and prints one JSON line of results; the
script exits 1 if any check fails (each failure is named).

Scenarios (see BENCHMARKS.md "Under attack"):
  two-processes  throttle and audit chain shared by two server processes on one database
  restart        PostgreSQL restarted mid-load: 503s during the outage, recovery without
                 a server restart, no acknowledged audit event lost (checked by load.sh
                 after the servers stop, with `audit export`/`audit verify`)
  slowloris      N TLS connections dribbling header bytes; a new client's /healthz < 1 s
  storm          wrk: N concurrent wrong-password sign-ins for org A; meanwhile org B's
                 admin reads /api/suppliers (p99, no 5xx) and the server's memory is sampled
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time

FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
        print(f"CHECK FAILED: {what}", file=sys.stderr)
    return ok


def tls_context():
    ctx = ssl.create_default_context()
    # The servers use a self-signed certificate on loopback.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    """One HTTPS client (a new connection per request: no keep-alive surprises)."""

    def __init__(self, port, cookie=None, csrf=None):
        self.port = port
        self.cookie = cookie
        self.csrf = csrf

    def request(self, method, path, body=None, timeout=10.0):
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=tls_context(), timeout=timeout
        )
        headers = {"content-type": "application/json"}
        if self.cookie:
            headers["cookie"] = self.cookie
        if self.csrf:
            headers["x-csrf-token"] = self.csrf
        data = None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            cookies = resp.headers.get_all("set-cookie") or []
            return resp.status, raw, cookies, dict(resp.headers)
        finally:
            conn.close()


def login(port, org, email, password):
    status, raw, cookies, _ = Client(port).request(
        "POST", "/api/login", {"org": org, "email": email, "password": password}
    )
    if status != 200:
        return status, None
    cookie = next(c.split(";")[0] for c in cookies if c.startswith("__Host-procuhelp-session="))
    return status, Client(port, cookie=cookie, csrf=json.loads(raw)["csrf_token"])


def read_demo(path):
    """seed-demo's output: organisation lines, then one line per user."""
    orgs, users = [], {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"organisation (\S+)", line)
        if m:
            orgs.append(m.group(1))
            continue
        m = re.match(r"\s+(\S+)\s+org=(\S+) email=(\S+) password=(\S+)", line)
        if m:
            users[(m.group(2), m.group(1))] = (m.group(3), m.group(4))
    return orgs, users


# ---- two processes --------------------------------------------------------------------
def two_processes(args, orgs, users):
    org_a = orgs[0]
    email, password = users[(org_a, "approver")]
    # Wrong passwords alternate between the processes: the lock counts them together.
    answers = []
    for i in range(10):
        port = args.port if i % 2 == 0 else args.port2
        status, _ = login(port, org_a, email, "wrong password " + str(i))
        answers.append(status)
    status_right, _ = login(args.port2, org_a, email, password)
    check(
        all(s in (401, 429) for s in answers),
        f"two-processes: wrong passwords answered {answers}",
    )
    check(
        status_right == 429,
        f"two-processes: after 10 failures spread over two processes the right password "
        f"got {status_right}, expected 429 (locked)",
    )
    # Both processes append to org A's chain at once; load.sh verifies it afterwards.
    admin_email, admin_password = users[(org_a, "admin")]
    _, c1 = login(args.port, org_a, admin_email, admin_password)
    acked = {"n": 0}
    lock = threading.Lock()

    def writer(port, n):
        client = Client(port, cookie=c1.cookie, csrf=c1.csrf)
        for i in range(n):
            status, _, _, _ = client.request(
                "POST", "/api/suppliers", {"name": f"Two-proc {port}-{i}", "country": "DE"}
            )
            if status in (200, 201):
                with lock:
                    acked["n"] += 1

    threads = [
        threading.Thread(target=writer, args=(p, 25)) for p in (args.port, args.port2, args.port, args.port2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(acked["n"] == 100, f"two-processes: {acked['n']}/100 concurrent creations acknowledged")
    return {"lock_after_spread_failures": status_right, "concurrent_creations_acked": acked["n"]}, c1


# ---- PostgreSQL restart ---------------------------------------------------------------
def restart(args, admin):
    stop = threading.Event()
    stats = {"acked": 0, "statuses": {}, "during_outage": {}, "errors": 0}
    outage = {"on": False}
    lock = threading.Lock()

    def count(status):
        with lock:
            if status is None:
                stats["errors"] += 1
                return
            key = str(status)
            stats["statuses"][key] = stats["statuses"].get(key, 0) + 1
            if outage["on"]:
                stats["during_outage"][key] = stats["during_outage"].get(key, 0) + 1
            if status in (200, 201):
                stats["acked"] += 1

    def writer(tid):
        client = Client(args.port, cookie=admin.cookie, csrf=admin.csrf)
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, _, _, _ = client.request(
                    "POST", "/api/suppliers", {"name": f"Restart {tid}-{i}", "country": "FR"}, timeout=15
                )
            except OSError:
                count(None)
                continue
            count(status)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    outage["on"] = True
    # Stop, keep it down for a moment (requests now fail), start again.
    subprocess.run(args.pg_stop, shell=True, check=True)
    time.sleep(2)
    subprocess.run(args.pg_start, shell=True, check=True)
    outage["on"] = False
    restarted = time.monotonic()
    # Recovery: the first success after the restart, without restarting the server.
    recovered = None
    while time.monotonic() - restarted < 30:
        status, _, _, _ = Client(args.port, cookie=admin.cookie).request("GET", "/api/suppliers")
        if status == 200:
            recovered = time.monotonic() - restarted
            break
        time.sleep(0.2)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    bad = {k: v for k, v in stats["statuses"].items() if k not in ("200", "201", "503")}
    check(recovered is not None, "restart: the server did not recover within 30 s")
    check(not bad, f"restart: statuses other than 201/503 during the run: {bad}")
    check(stats["acked"] > 0, "restart: nothing was acknowledged")
    check(stats["errors"] == 0, f"restart: {stats['errors']} requests got no HTTP answer (expected 503)")
    with open(args.acked_file, "w", encoding="utf-8") as f:
        f.write(str(stats["acked"]))
    stats["recovered_after_s"] = recovered
    return stats


# ---- slowloris ------------------------------------------------------------------------
async def slowloris(args):
    ctx = tls_context()
    closed_by_server = 0
    opened = 0

    async def dribble(deadline):
        nonlocal closed_by_server, opened
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", args.port, ssl=ctx), timeout=20
            )
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            closed_by_server += 1  # refused at the door (connection cap or handshake timeout)
            return
        opened += 1
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            await writer.drain()
            while time.monotonic() < deadline:
                await asyncio.sleep(2)
                writer.write(b"X-Slow: a\r\n")
                await writer.drain()
                # A closed connection shows as EOF on read.
                try:
                    data = await asyncio.wait_for(reader.read(1), timeout=0.01)
                    if data == b"":
                        closed_by_server += 1
                        return
                except asyncio.TimeoutError:
                    pass
        except (OSError, ssl.SSLError, ConnectionError):
            closed_by_server += 1
        finally:
            writer.close()

    deadline = time.monotonic() + args.slow_seconds
    tasks = [asyncio.create_task(dribble(deadline)) for _ in range(args.slow_conns)]
    probes = []
    await asyncio.sleep(3)
    while time.monotonic() < deadline - 1:
        started = time.monotonic()
        try:
            status = await asyncio.to_thread(lambda: Client(args.port).request("GET", "/healthz", timeout=5)[0])
        except OSError:
            status = 0
        probes.append((status, time.monotonic() - started))
        await asyncio.sleep(2)
    await asyncio.gather(*tasks)
    worst = max(t for _, t in probes) if probes else None
    check(probes and all(s == 200 for s, _ in probes), f"slowloris: /healthz answers {[s for s, _ in probes]}")
    check(worst is not None and worst < 1.0, f"slowloris: slowest /healthz {worst} s (bound 1 s)")
    check(
        closed_by_server == args.slow_conns,
        f"slowloris: the server closed {closed_by_server}/{args.slow_conns} dribbling connections",
    )
    return {"probes": len(probes), "worst_healthz_s": worst, "closed_by_server": closed_by_server}


# ---- login storm ----------------------------------------------------------------------
# `counts` is a global on purpose: thread:get() reads a thread's globals, not locals.
WRK_COUNT = r"""
counts = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, '"' .. k .. '":' .. v) end
  io.write("STATUS {" .. table.concat(parts, ",") .. "}\n")
  io.write(string.format("P99_US %d\nP50_US %d\nREQS %d\n", latency:percentile(99), latency:percentile(50), summary.requests))
end
"""


def wrk(port, conns, seconds, path, lua_head, threads=2):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_head + WRK_COUNT)
        script = f.name
    cmd = [
        "wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
        "-s", script, f"https://127.0.0.1:{port}{path}",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parse_wrk(out):
    found = re.search(r"STATUS (\{.*\})", out)
    if not found:
        raise RuntimeError(f"wrk printed no status counts:\n{out}")
    statuses = json.loads(found.group(1))
    p99 = int(re.search(r"P99_US (\d+)", out).group(1)) / 1000.0
    p50 = int(re.search(r"P50_US (\d+)", out).group(1)) / 1000.0
    reqs = int(re.search(r"REQS (\d+)", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    return statuses, p50, p99, reqs, errors.group(1) if errors else ""


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def storm(args, orgs, users, victim):
    org_a = orgs[0]
    email, _ = users[(org_a, "read_only")]
    body = json.dumps({"org": org_a, "email": email, "password": "not the password"})
    storm_lua = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    victim_lua = f'wrk.headers["Cookie"] = "{victim.cookie}"\n'
    rss_before = rss_kib(args.pid)
    attack = wrk(args.port, args.storm_conns, args.storm_seconds, "/api/login", storm_lua)
    time.sleep(1)
    # The victim: another organisation's admin, a few connections, same duration less
    # the ramp-up second.
    reader = wrk(args.port, 4, args.storm_seconds - 2, "/api/suppliers", victim_lua, threads=1)
    peak = rss_before
    while attack.poll() is None:
        peak = max(peak, rss_kib(args.pid))
        time.sleep(0.5)
    attack_out = attack.communicate()[0]
    reader_out = reader.communicate()[0]
    a_status, a_p50, a_p99, a_reqs, a_err = parse_wrk(attack_out)
    v_status, v_p50, v_p99, v_reqs, v_err = parse_wrk(reader_out)
    check(set(a_status) <= {"401", "429", "503"}, f"storm: the attack got {a_status}")
    check(set(v_status) == {"200"}, f"storm: the victim got {v_status}")
    check(v_p99 < args.victim_p99_ms, f"storm: victim p99 {v_p99} ms (bound {args.victim_p99_ms} ms)")
    check(peak < args.rss_bound_mib * 1024, f"storm: peak RSS {peak // 1024} MiB (bound {args.rss_bound_mib} MiB)")
    return {
        "attack": {"statuses": a_status, "requests": a_reqs, "p50_ms": a_p50, "p99_ms": a_p99, "socket_errors": a_err},
        "victim": {"statuses": v_status, "requests": v_reqs, "p50_ms": v_p50, "p99_ms": v_p99, "socket_errors": v_err},
        "rss_mib": {"before": rss_before // 1024, "peak": peak // 1024},
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--port2", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--demo", required=True)
    p.add_argument("--pg-stop", required=True)
    p.add_argument("--pg-start", required=True)
    p.add_argument("--acked-file", required=True)
    p.add_argument("--storm-conns", type=int, default=500)
    p.add_argument("--storm-seconds", type=int, default=30)
    p.add_argument("--slow-conns", type=int, default=500)
    p.add_argument("--slow-seconds", type=int, default=60)
    p.add_argument("--victim-p99-ms", type=float, default=100.0)
    p.add_argument("--rss-bound-mib", type=int, default=512)
    args = p.parse_args()

    orgs, users = read_demo(args.demo)
    org_b = orgs[1]
    # Sign the victim in before anything else: the storm throttles this address.
    status, victim = login(args.port, org_b, *users[(org_b, "admin")])
    if not check(status == 200, f"victim sign-in answered {status}"):
        sys.exit(1)
    results = {}
    results["two_processes"], admin_a = two_processes(args, orgs, users)
    results["restart"] = restart(args, admin_a)
    results["slowloris"] = asyncio.run(slowloris(args))
    results["storm"] = storm(args, orgs, users, victim)
    print(json.dumps(results))
    if FAILURES:
        print(f"\nload: {len(FAILURES)} check(s) failed:", file=sys.stderr)
        for f in FAILURES:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print("load: all checks passed", file=sys.stderr)


if __name__ == "__main__":
    main()
