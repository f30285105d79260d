#!/usr/bin/env python3
"""epoll-ET vs io_uring vs HAProxy, in one run (issue 17, part 1; called by
bench/uring/run.sh). Reuses bench/compare/bench.py (the nginx HTTPS backend,
wrk with its Lua reporter, HAProxy's contender config, /proc CPU meters) and
runs two of its workloads, interleaved over rounds with the start rotating:
  keepalive: wrk, 64 kept-alive TLS connections
  close:     wrk with Connection: close (a new TCP connection + TLS handshake per request)
The relay under test is bench/uring/uring_relay, one thread per core, each
with its own SO_REUSEPORT listener, forwarding to the nginx backend (no SNI
routing: the upstream is fixed). Then, unless --no-strace, each backend runs
once more under `strace -f -c` for the syscalls per connection and per request.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "compare"))
import bench as cmp  # noqa: E402  (bench/compare/bench.py)

BACKENDS = ["epoll", "uring"]
cmp.CONTENDERS = BACKENDS + ["haproxy", "direct"]
cmp.PROXIES = BACKENDS + ["haproxy"]
cmp.RATIO_BASES = (("e", "epoll"), ("h", "haproxy"), ("d", "direct"))
log = cmp.log


class UringBench(cmp.Bench):
    def __init__(self, args):
        args.short = False
        super().__init__(args)
        self.prof["rounds"] = args.rounds
        self.prof["wrk_seconds"] = args.seconds
        base = args.port_base
        self.port.update({"epoll": base + 21, "uring": base + 22})

    def bin(self, name):
        path = f"{self.build}/bench/uring/{name}"
        return path if os.path.exists(path) else super().bin(name)

    def relay_argv(self, backend, port):
        return [self.bin("uring_relay"), "--backend", backend, "--listen", f"127.0.0.1:{port}",
                "--upstream", f"127.0.0.1:{self.https_port}", "--threads", str(self.cores)]

    def start_contender(self, c):
        if c not in BACKENDS:
            return super().start_contender(c)
        self.procs.start(c, self.relay_argv(c, self.port[c]), stop_signal=signal.SIGTERM)
        if not cmp.wait_port(self.port[c]):
            sys.exit(f"bench: {c} did not start:\n{self.procs.log_tail(c)}")

    def smoke(self):
        """One HTTPS request through every path (the relay has no sink route)."""
        import socket
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for c in cmp.CONTENDERS:
            with socket.create_connection(("127.0.0.1", self.target(c, "https")), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=cmp.HTTPS_SNI) as s:
                    s.sendall(f"GET / HTTP/1.1\r\nHost: {cmp.HTTPS_SNI}\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                sys.exit(f"bench: {c}: smoke test failed: {data[:80]!r}")
            log(f"{c}: serves https")

    def run(self):
        self.run_workload("keepalive", self.prof["rounds"], lambda c: self.wrk(c, close=False))
        self.run_workload("close", self.prof["rounds"], lambda c: self.wrk(c, close=True))

    def strace(self, backend, close, seconds):
        """Syscalls per unit of one backend under strace -f -c (slowed, so rates are meaningless)."""
        port = self.port[backend] + 10
        out = f"{self.work}/strace-{backend}-{'close' if close else 'keepalive'}.txt"
        name = f"strace-{backend}"
        self.procs.start(name, ["strace", "-f", "-c", "-o", out, "--"] + self.relay_argv(backend, port))
        if not cmp.wait_port(port):
            sys.exit(f"bench: {backend} under strace did not start:\n{self.procs.log_tail(name)}")
        argv = ["wrk", f"-t{self.cores}", "-c64", f"-d{seconds}s", "--timeout", "5s", "-s",
                f"{HERE}/../compare/wrk.lua"]
        argv += (["-H", "Connection: close"] if close else []) + [f"https://{cmp.HTTPS_SNI}:{port}/"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        line = next((l for l in p.stdout.splitlines() if l.startswith('{"bench_wrk"')), None)
        requests = json.loads(line)["requests"] if line else 0
        tracer = self.procs.running[name][0]
        relay = subprocess.run(["pgrep", "-P", str(tracer.pid)], capture_output=True, text=True).stdout.split()
        for pid in relay:
            os.kill(int(pid), signal.SIGTERM)  # the relay exits cleanly, so strace writes its summary
        tracer.wait(timeout=30)
        self.procs.stop(name)
        stats = {}
        for l in open(out).read().splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)$", l)
            if m and m.group(3) != "total":
                stats[m.group(3)] = int(m.group(1))
        tail = self.procs.log_tail(name, 3)
        sessions = json.loads(tail.strip().splitlines()[-1]).get("sessions", 0) if "{" in tail else 0
        return {"requests": requests, "sessions": sessions, "calls": stats}


def table(R, key, metrics):
    return cmp.metric_table(R, key, metrics)


def syscall_table(traces):
    """traces: {(backend, workload): result}. Calls per connection (close) and per request (keepalive)."""
    names = sorted({n for t in traces.values() for n in t["calls"]},
                   key=lambda n: -max(t["calls"].get(n, 0) / max(1, t["requests"]) for t in traces.values()))
    cols = [(b, w) for w in ("close", "keepalive") for b in BACKENDS if (b, w) in traces]
    head = ["syscall"] + [f"{b}, per {'connection' if w == 'close' else 'request'} ({w})" for b, w in cols]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = {c: 0.0 for c in cols}
    for n in names:
        cells = [f"`{n}`"]
        for c in cols:
            t = traces[c]
            v = t["calls"].get(n, 0) / max(1, t["requests"])
            total[c] += v
            cells.append(f"{v:.2f}" if v else "")
        if any(traces[c]["calls"].get(n, 0) / max(1, traces[c]["requests"]) >= 0.01 for c in cols):
            rows.append("| " + " | ".join(cells) + " |")
    rows.append("| **total** | " + " | ".join(f"**{total[c]:.2f}**" for c in cols) + " |")
    rows.append("| (requests traced) | " + " | ".join(str(traces[c]["requests"]) for c in cols) + " |")
    return "\n".join(rows)


def report(b, traces, started):
    R = b.results
    mach = cmp.machine()
    L = [f"Run: {started}, {mach['nproc']} cores, {mach['cpu']}, Linux {mach['kernel']}; "
         f"{b.prof['rounds']} rounds × {b.prof['wrk_seconds']} s per contender and workload, interleaved; "
         f"medians (min–max). Command: `{b.args.command}`.\n"]
    L.append("### Kept-alive requests (wrk, 64 connections)\n")
    L.append(table(R, "keepalive", [("rate", "req/s", 0, "h"), ("p99_ms", "p99 ms", 2, "h"),
                                    ("cpu_per_100k", "proxy CPU s / 100k req", 3, "eh"),
                                    ("mcpu_per_unit", "machine CPU s / 100k req", 3, "h"),
                                    ("mcpu_over_direct", "machine over direct / 100k", 3, "h")]))
    L.append("\n### New TLS connection per request (wrk, Connection: close)\n")
    L.append(table(R, "close", [("rate", "conn/s", 0, "h"), ("p99_ms", "p99 ms", 2, "h"),
                                ("cpu_per_10k", "proxy CPU s / 10k conn", 3, "eh"),
                                ("mcpu_per_unit", "machine CPU s / 10k conn", 3, "h"),
                                ("mcpu_over_direct", "machine over direct / 10k", 3, "h")]))
    if traces:
        L.append("\n### Syscalls (strace -f -c, one extra run per backend)\n")
        L.append(syscall_table(traces))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--out", help="Markdown tables to this file")
    ap.add_argument("--json", help="raw per-round results")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", "21600")))
    ap.add_argument("--command", default="bench/uring/run.sh")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    b = UringBench(args)
    started = time.strftime("%Y-%m-%d %H:%M")
    traces = {}
    try:
        b.setup()
        b.run()
        if not args.no_strace:
            for backend in BACKENDS:
                for close in (True, False):
                    traces[(backend, "close" if close else "keepalive")] = b.strace(backend, close, 3)
    except KeyboardInterrupt:
        return 130
    finally:
        b.procs.stop_all()
    text = report(b, traces, started)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": b.results, "strace": {f"{k[0]}/{k[1]}": v for k, v in traces.items()}}, f, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
