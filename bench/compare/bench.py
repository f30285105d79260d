#!/usr/bin/env python3
"""The orchestrator behind bench/compare/run.sh (which installs and builds,
then calls this): starts the backends and the five contenders on 127.0.0.1,
runs the four workloads of issue 7 interleaved over rounds, measures each
proxy's CPU (utime+stime of all its processes), the whole machine's CPU from
/proc/stat minus other people's processes, and over direct (issue 17), memory
and pipes from /proc, and writes the Markdown report.

Everything it starts runs in its own process group with its pid recorded in
WORK/pids/, so run.sh's EXIT trap can stop it even if this script dies.
"""

import argparse
import datetime
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

HTTPS_SNI = "bench.mesh.test"   # routed to the nginx https backend (wrk workloads)
SINK_SNI = "sink.mesh.test"     # routed to byte_sink (bulk and idle workloads)
CONTENDERS = ["meshgate", "haproxy", "nginx", "sniproxy", "direct"]
PROXIES = CONTENDERS[:-1]
GIB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))

# Durations and sizes per mode. The short mode is CI's smoke test: it must
# stay under 2 minutes on 2 cores, so fewer rounds and smaller transfers.
PROFILES = {
    "full": dict(rounds=5, wrk_seconds=5, bulk_rounds=3, bulk_bytes=GIB, bulk8_bytes=GIB,
                 idle_rounds=3, idle_conns=4000),
    "short": dict(rounds=2, wrk_seconds=2, bulk_rounds=1, bulk_bytes=256 << 20, bulk8_bytes=32 << 20,
                  idle_rounds=1, idle_conns=1000),
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc ----

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(pid):
    """pid and all its descendants (nginx master + workers)."""
    if pid is None:
        return []
    kids, out, todo = children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except OSError:
            pass
    return total / CLK_TCK


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def pipes(pids):
    """Distinct pipes the processes hold an end of."""
    seen = set()
    for p in pids:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    t = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                if t.startswith("pipe:"):
                    seen.add(t)
        except OSError:
            pass
    return len(seen)


def meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_snapshot():
    """(all jiffies, busy jiffies) of the whole machine, in seconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])  # guest time is already inside user
    return total / CLK_TCK, (total - v[3] - v[4]) / CLK_TCK


def machine_busy():
    """Busy seconds of all cores since boot, from the aggregate "cpu" line of
    /proc/stat (proc(5)): user + nice + system + irq + softirq + steal. idle and
    iowait are not busy; guest and guest_nice are already inside user and nice."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


def proc_table():
    """{pid: (ppid, utime+stime ticks)} of every process now, kernel threads included."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        out[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


class MachineMeter:
    """Machine CPU over one measured interval (issue 17): /proc/stat busy time
    of all cores, so softirq, ksoftirqd and kworkers count too, not only the
    proxy's own utime+stime.

    The machine is shared, so busy time also holds other people's processes.
    Those are estimated and taken out: others = busy - (CPU of every process
    this benchmark started, itself and its reaped children included, plus all
    kernel threads). `machine` = busy - others, `raw` = busy. Kernel threads
    stay in (that is where moved work goes) even though others' traffic can
    wake them too; with tick accounting (CONFIG_TICK_CPU_ACCOUNTING) softirq
    run in a task's context is charged to that task, so a packet handled
    while a foreign process runs counts as theirs."""

    def __init__(self, roots):
        self.roots = [r for r in roots if r]
        self.busy0, self.ours0 = machine_busy(), self._ours()

    def _ours(self):
        table = proc_table()
        kids = {}
        for pid, (ppid, _) in table.items():
            kids.setdefault(ppid, []).append(pid)
        mine, todo = set(), list(self.roots)
        while todo:
            p = todo.pop()
            if p in table and p not in mine:
                mine.add(p)
                todo.extend(kids.get(p, []))
        ticks = {p: c for p, (pp, c) in table.items() if p in mine or p == 2 or pp == 2}  # 2: kthreadd
        t = os.times()
        return ticks, t.user + t.system + t.children_user + t.children_system

    def stop(self):
        busy = machine_busy() - self.busy0
        (t0, s0), (t1, s1) = self.ours0, self._ours()
        ours = sum(c - t0.get(p, 0) for p, c in t1.items()) / CLK_TCK + (s1 - s0)
        others = max(0.0, busy - ours)
        return {"machine_s": busy - others, "machine_raw_s": busy, "others_s": others}


def cpu_busy_fraction(seconds=2.0):
    """Share of all cores busy over `seconds` (before we start anything)."""
    t0, b0 = cpu_snapshot()
    time.sleep(seconds)
    t1, b1 = cpu_snapshot()
    return (b1 - b0) / max(1e-9, t1 - t0)


# ------------------------------------------------------------ processes ----

class Procs:
    """Starts and stops everything, recording pids for run.sh's trap."""

    def __init__(self, work):
        self.work = work
        self.running = {}
        os.makedirs(f"{work}/pids", exist_ok=True)
        os.makedirs(f"{work}/logs", exist_ok=True)

    def start(self, name, argv, stop_signal=signal.SIGTERM):
        logf = open(f"{self.work}/logs/{name}.log", "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True)
        logf.close()
        with open(f"{self.work}/pids/{name}.pid", "w") as f:
            f.write(str(p.pid))
        self.running[name] = (p, stop_signal)
        return p

    def pid(self, name):
        return self.running[name][0].pid if name in self.running else None

    def alive(self, name):
        return name in self.running and self.running[name][0].poll() is None

    def stop(self, name):
        p, sig = self.running.pop(name, (None, None))
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)  # its own group: nginx's workers go too
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        try:
            os.unlink(f"{self.work}/pids/{name}.pid")
        except OSError:
            pass

    def stop_all(self):
        for name in list(self.running):
            self.stop(name)

    def log_tail(self, name, lines=15):
        try:
            with open(f"{self.work}/logs/{name}.log", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def wait_port(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# ---------------------------------------------------------------- bench ----

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.build = args.build
        self.prof = dict(PROFILES["short" if args.short else "full"])
        if args.rounds:
            self.prof["rounds"] = args.rounds
        self.cores = os.cpu_count() or 1
        self.procs = Procs(self.work)
        base = args.port_base
        self.https_port, self.sink_port = base, base + 1
        self.port = {"meshgate": base + 11, "haproxy": base + 12, "nginx": base + 13, "sniproxy": base + 14,
                     "direct": None}
        self.results = {}     # workload -> contender -> [round dicts]
        self.failures = []    # meshgate problems that fail the run
        self.notes = []
        self.others_busy = None  # share of the machine used by other processes during the run

    # -- setup --------------------------------------------------------------

    def target(self, contender, kind):
        """(port) a client uses to reach `kind` ('https' or 'sink') via contender."""
        if contender == "direct":
            return self.https_port if kind == "https" else self.sink_port
        return self.port[contender]

    def bin(self, name):
        for p in (f"{self.build}/{name}", f"{self.build}/bench/{name}"):
            if os.path.exists(p):
                return p
        sys.exit(f"bench: {name} not built in {self.build}")

    def write(self, name, text):
        path = f"{self.work}/{name}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def setup(self):
        ports = [self.https_port, self.sink_port] + [p for p in self.port.values() if p]
        busy = [p for p in ports if not port_free(p)]
        if busy:
            sys.exit(f"bench: ports in use on 127.0.0.1: {busy} (set BENCH_PORT_BASE)")
        w = self.work
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", f"/CN={HTTPS_SNI}",
                        "-addext", f"subjectAltName=DNS:{HTTPS_SNI}",
                        "-keyout", f"{w}/key.pem", "-out", f"{w}/cert.pem"],
                       check=True, capture_output=True)
        self.start_backends()
        for c in PROXIES:
            self.start_contender(c)
        self.smoke()

    def start_backends(self):
        w, n = self.work, self.cores
        body = "x" * 99  # + nginx's none: a 100-byte body with the newline below
        conf = f"""# nginx https backend of the wrk workloads (not a contender)
worker_processes {n};
worker_rlimit_nofile 20000;
pid {w}/backend-nginx.pid;
error_log {w}/logs/backend-nginx.error.log warn;
daemon off;
events {{ worker_connections 10000; }}
http {{
  access_log off;
  client_body_temp_path {w}/nginx-tmp/body;
  proxy_temp_path {w}/nginx-tmp/proxy;
  fastcgi_temp_path {w}/nginx-tmp/fastcgi;
  uwsgi_temp_path {w}/nginx-tmp/uwsgi;
  scgi_temp_path {w}/nginx-tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{self.https_port} ssl reuseport;
    ssl_certificate {w}/cert.pem;
    ssl_certificate_key {w}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    # No resumption: with Connection: close every connection is a full handshake.
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{ default_type text/plain; return 200 "{body}\\n"; }}
  }}
}}
"""
        os.makedirs(f"{w}/nginx-tmp", exist_ok=True)
        path = self.write("backend-nginx.conf", conf)
        self.procs.start("backend-nginx", ["nginx", "-p", f"{w}/nginx-tmp", "-e",
                                           f"{w}/logs/backend-nginx.error.log", "-c", path])
        self.procs.start("byte_sink", [self.bin("byte_sink"), "--listen", f"127.0.0.1:{self.sink_port}",
                                       "--threads", str(n)])
        for name, port in (("backend-nginx", self.https_port), ("byte_sink", self.sink_port)):
            if not wait_port(port):
                sys.exit(f"bench: {name} did not start:\n{self.procs.log_tail(name)}")

    def start_contender(self, c):
        w, n, port = self.work, self.cores, self.port.get(c)
        https, sink = f"127.0.0.1:{self.https_port}", f"127.0.0.1:{self.sink_port}"
        if c == "meshgate":
            mesh = ""
            for name, host, p in (("bench-https", HTTPS_SNI, self.https_port), ("bench-sink", SINK_SNI, self.sink_port)):
                mesh += f"""---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {{name: {name}, namespace: bench}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  ports: [{{name: tls, number: 443, protocol: TLS}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tls: {p}}}}}]
"""
            # meshgate fails closed like Istio's gateway: a Gateway must export
            # the hosts. The peers route plain-host SNI from clients (wrk,
            # bulk_client) that offer no Istio ALPN, so meshgate is given the
            # same job: plainHostSni on, the Istio ALPN check off.
            mesh += f"""---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bench, namespace: istio-system}}
spec:
  servers:
  - port: {{number: {port}, name: tls, protocol: TLS}}
    tls: {{mode: AUTO_PASSTHROUGH}}
    hosts: ["*.mesh.test"]
"""
            path = self.write("meshgate/mesh.yaml", mesh)
            config = self.write("meshgate/meshgate.yaml", "plainHostSni: true\nrequireIstioAlpn: false\n")
            # relay: splice is the default (config/gateway_config.h) and the fast path.
            self.procs.start(c, [self.bin("meshgate"), "--config", config, "--mesh", path,
                                 "--listen", f"127.0.0.1:{port}",
                                 "--threads", str(n), "--access-log", "off", "--metrics", "off",
                                 "--readiness", "off", "--admin", "off", "--log-level", "warn"],
                             stop_signal=signal.SIGINT)  # SIGTERM would drain for 5 s
        elif c == "haproxy":
            self.write("haproxy/sni.map", f"{HTTPS_SNI} https\n{SINK_SNI} sink\n")
            conf = f"""# HAProxy contender: SNI map, splice, one listener per thread
global
  nbthread {n}
  maxconn 7000
  pidfile {w}/haproxy/haproxy.pid
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  option splice-auto
frontend sni
  bind 127.0.0.1:{port} shards by-thread
  tcp-request inspect-delay 5s
  tcp-request content accept if {{ req.ssl_hello_type 1 }}
  use_backend %[req.ssl_sni,lower,map({w}/haproxy/sni.map)]
backend https
  server s1 {https}
backend sink
  server s1 {sink}
"""
            path = self.write("haproxy/haproxy.cfg", conf)
            self.procs.start(c, ["haproxy", "-db", "-f", path])
        elif c == "nginx":
            conf = f"""# nginx contender: stream + ssl_preread, reuseport, one worker per core
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes {n};
worker_rlimit_nofile 20000;
pid {w}/nginx/nginx.pid;
error_log {w}/logs/nginx.error.log warn;
daemon off;
events {{ worker_connections 10000; }}
stream {{
  map $ssl_preread_server_name $upstream {{
    {HTTPS_SNI} {https};
    {SINK_SNI} {sink};
    default 127.0.0.1:1;
  }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    ssl_preread on;
    preread_timeout 5s;
    proxy_connect_timeout 5s;
    proxy_timeout 1h;
    proxy_pass $upstream;
  }}
}}
"""
            os.makedirs(f"{w}/nginx", exist_ok=True)
            path = self.write("nginx/nginx.conf", conf)
            self.procs.start(c, ["nginx", "-p", f"{w}/nginx", "-e", f"{w}/logs/nginx.error.log", "-c", path])
        elif c == "sniproxy":
            conf = f"""# sniproxy contender: one table, name -> backend
pidfile {w}/sniproxy/sniproxy.pid
error_log {{
  filename {w}/logs/sniproxy.error.log
  priority warning
}}
listener 127.0.0.1:{port} {{
  protocol tls
  table bench
}}
table bench {{
  ^{HTTPS_SNI.replace('.', '[.]')}$ {https}
  ^{SINK_SNI.replace('.', '[.]')}$ {sink}
}}
"""
            path = self.write("sniproxy/sniproxy.conf", conf)
            self.procs.start(c, ["sniproxy", "-f", "-c", path])
        else:
            return
        if not wait_port(port):
            sys.exit(f"bench: {c} did not start:\n{self.procs.log_tail(c)}")

    def restart(self, c):
        if c in PROXIES:
            self.procs.stop(c)
            self.start_contender(c)

    def smoke(self):
        """One HTTPS request and one small upload through every path, before measuring."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for c in CONTENDERS:
            port = self.target(c, "https")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname=HTTPS_SNI) as s:
                        s.sendall(f"GET / HTTP/1.1\r\nHost: {HTTPS_SNI}\r\nConnection: close\r\n\r\n".encode())
                        data = b""
                        while chunk := s.recv(4096):
                            data += chunk
                ok_https = data.startswith(b"HTTP/1.1 200")
            except OSError as e:
                ok_https, data = False, str(e).encode()
            up = self.bulk(c, "upload", 1 << 20, 1)
            if not ok_https or not up.get("ok"):
                msg = f"{c}: smoke test failed (https: {ok_https}, upload: {up})"
                log(msg + "\n" + self.procs.log_tail(c) if c in PROXIES else msg)
                if c == "meshgate":
                    self.failures.append(msg)
                else:
                    self.notes.append(msg)
            else:
                log(f"{c}: routes https and sink")

    # -- workloads ----------------------------------------------------------

    def contender_pids(self, c):
        return process_tree(self.procs.pid(c)) if c in PROXIES else []

    def wrk(self, c, close):
        port = self.target(c, "https")
        argv = ["wrk", f"-t{self.cores}", "-c64", f"-d{self.prof['wrk_seconds']}s", "--latency",
                "--timeout", "5s", "-s", f"{HERE}/wrk.lua"]
        if close:
            argv += ["-H", "Connection: close"]
        argv.append(f"https://{HTTPS_SNI}:{port}/")
        pids = self.contender_pids(c)
        meter = self.meter()
        cpu0 = cpu_seconds(pids)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=self.prof["wrk_seconds"] + 60)
        cpu = cpu_seconds(pids) - cpu0
        mach = meter.stop()
        line = next((l for l in p.stdout.splitlines() if l.startswith('{"bench_wrk"')), None)
        if p.returncode != 0 or line is None:
            return {"ok": False, "error": (p.stderr or p.stdout)[-300:]}
        r = json.loads(line)
        errors = sum(r["errors"].values())
        secs = r["duration_us"] / 1e6
        n = r["requests"]
        out = {"ok": n > 0 and errors <= 0.01 * n, "requests": n, "errors": errors, "error_detail": r["errors"],
               "rate": n / secs if secs else 0, "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
               "cpu_s": cpu, **mach}
        if c in PROXIES and n:
            out["cpu_per_100k"] = cpu / n * 1e5     # keep-alive: per 100k requests
            out["cpu_per_10k"] = cpu / n * 1e4      # close: per 10k connections
        if n:
            per = 1e4 if close else 1e5
            out["mcpu_per_unit"] = mach["machine_s"] / n * per
            out["mcpu_raw_per_unit"] = mach["machine_raw_s"] / n * per
        return out

    def bulk(self, c, mode, nbytes, streams):
        port = self.target(c, "sink")
        pids = self.contender_pids(c)
        meter = self.meter()
        cpu0 = cpu_seconds(pids)
        p = subprocess.run([self.bin("bulk_client"), mode, "--connect", f"127.0.0.1:{port}", "--sni", SINK_SNI,
                            "--bytes", str(nbytes), "--streams", str(streams)],
                           capture_output=True, text=True, timeout=600)
        cpu = cpu_seconds(pids) - cpu0
        mach = meter.stop()
        try:
            r = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"ok": False, "error": p.stderr[-300:]}
        r["ok"] = bool(r.get("ok")) and p.returncode == 0 and r["bytes"] == nbytes * streams
        r["cpu_s"] = cpu
        r.update(mach)
        if c in PROXIES and r["bytes"]:
            r["cpu_per_gib"] = cpu / (r["bytes"] / GIB)
        if r["bytes"]:
            r["mcpu_per_unit"] = mach["machine_s"] / (r["bytes"] / GIB)
            r["mcpu_raw_per_unit"] = mach["machine_raw_s"] / (r["bytes"] / GIB)
        return r

    def idle(self, c, conns):
        self.restart(c)  # fresh process, so freed memory from earlier rounds is not reused
        warm = self.bulk(c, "upload", 4096, 8)  # touch the code paths and per-thread pools
        client = [self.bin("bulk_client"), "idle", "--connect", f"127.0.0.1:{self.target(c, 'sink')}",
                  "--sni", SINK_SNI, "--conns"]
        subprocess.run(client + ["50"], input="", capture_output=True, text=True, timeout=60)
        time.sleep(0.5)
        pids = self.contender_pids(c)
        rss0, pipes0, slab0 = rss_kib(pids), pipes(pids), meminfo_kib("Slab")
        p = subprocess.Popen(client + [str(conns)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            r = json.loads(line) if line else {"ready": 0, "ok": False, "error": p.stderr.read()[-300:]}
            time.sleep(1.0)
            pids = self.contender_pids(c)
            rss1, pipes1, slab1 = rss_kib(pids), pipes(pids), meminfo_kib("Slab")
        finally:
            p.stdin.close()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        ready = r.get("ready", 0)
        out = {"ok": bool(r.get("ok")) and ready == conns and warm.get("ok", False), "ready": ready,
               "error": r.get("error", ""), "setup_s": r.get("seconds")}
        if ready:
            out["slab_per_conn"] = (slab1 - slab0) / ready  # KiB, whole machine: noisy
            if c in PROXIES:
                out["rss_per_conn"] = (rss1 - rss0) / ready
                out["pipes"] = pipes1
                out["pipes_added"] = pipes1 - pipes0
                # The "idle memory, counting pinned pipe buffers": user
                # memory plus one 4 KiB page per pipe held (an emptied pipe keeps a page).
                out["mem_per_conn"] = (rss1 - rss0 + 4 * max(0, pipes1 - pipes0)) / ready
        time.sleep(1.0)  # let the closes finish before the next contender
        return out

    def meter(self):
        """Starts a machine-CPU measurement; everything this benchmark runs is 'ours'."""
        return MachineMeter([self.procs.pid(n) for n in self.procs.running])

    def over_direct(self, key):
        """Machine CPU per unit minus direct's in the same round (the client and
        backend cost the same in both), i.e. what the proxy adds to the machine.
        A round whose direct run failed uses direct's median instead."""
        res = self.results.get(key, {})
        direct = res.get("direct", [])
        fallback = med(self.results, key, "direct", "mcpu_per_unit")
        for c, runs in res.items():
            for i, r in enumerate(runs):
                if r.get("mcpu_per_unit") is None:
                    continue
                d = direct[i] if i < len(direct) else {}
                base = d.get("mcpu_per_unit") if d.get("ok") else fallback
                if base is not None:
                    r["mcpu_over_direct"] = r["mcpu_per_unit"] - base

    def run_workload(self, key, rounds, fn):
        log(f"workload {key}: {rounds} round(s) x {len(CONTENDERS)} contenders")
        res = self.results.setdefault(key, {c: [] for c in CONTENDERS})
        for r in range(rounds):
            order = CONTENDERS[r % len(CONTENDERS):] + CONTENDERS[:r % len(CONTENDERS)]  # rotate the start
            for c in order:
                if c in PROXIES and not self.procs.alive(c):
                    res[c].append({"ok": False, "error": "process died"})
                    continue
                out = fn(c)
                res[c].append(out)
                if not out.get("ok"):
                    log(f"  {key} round {r + 1} {c}: FAILED {out}")
                    if c in PROXIES:
                        log(self.procs.log_tail(c, 5))
        self.over_direct(key)

    def our_cpu(self):
        """CPU seconds used so far by everything this benchmark runs."""
        t = os.times()
        ours = t.user + t.system + t.children_user + t.children_system  # us, wrk, bulk_client
        return ours + sum(cpu_seconds(process_tree(self.procs.pid(n))) for n in self.procs.running)

    def run(self):
        P = self.prof
        # How much of the machine others used while we measured (up to the idle
        # workload, which restarts the proxies and so loses their counters).
        ours0, (all0, busy0) = self.our_cpu(), cpu_snapshot()
        self.run_workload("keepalive", P["rounds"], lambda c: self.wrk(c, close=False))
        self.run_workload("close", P["rounds"], lambda c: self.wrk(c, close=True))
        self.run_workload("bulk1", P["bulk_rounds"], lambda c: self.bulk(c, "upload", P["bulk_bytes"], 1))
        self.run_workload("bulk8", P["bulk_rounds"], lambda c: self.bulk(c, "upload", P["bulk8_bytes"], 8))
        ours1, (all1, busy1) = self.our_cpu(), cpu_snapshot()
        self.others_busy = max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / max(1e-9, all1 - all0))
        self.run_workload("idle", P["idle_rounds"], lambda c: self.idle(c, P["idle_conns"]))
        base = med(self.results, "idle", "direct", "slab_per_conn")  # the client's and sink's sockets
        for c in PROXIES:
            for r in self.results["idle"].get(c, []):
                if base is not None and "slab_per_conn" in r:
                    r["slab_extra"] = r["slab_per_conn"] - base
        for c in PROXIES:
            if not self.procs.alive(c):
                msg = f"{c} exited during the run:\n{self.procs.log_tail(c)}"
                (self.failures if c == "meshgate" else self.notes).append(msg)

    # -- verdict ------------------------------------------------------------

    def check(self):
        """Short-mode (and full-mode) pass/fail: meshgate must work through
        every path, and its CPU per new connection must stay within 3x HAProxy's."""
        names = {"keepalive": "keep-alive wrk", "close": "Connection: close wrk", "bulk1": "bulk 1 stream",
                 "bulk8": "bulk 8 streams", "idle": "idle connections"}
        for key, title in names.items():
            for i, r in enumerate(self.results.get(key, {}).get("meshgate", [])):
                if not r.get("ok"):
                    self.failures.append(f"meshgate failed {title} round {i + 1}: {r}")
        mg = med(self.results, "close", "meshgate", "cpu_per_10k")
        hp = med(self.results, "close", "haproxy", "cpu_per_10k")
        if mg is not None and hp:
            if mg > 3 * hp:
                self.failures.append(f"meshgate CPU per new connection is {mg / hp:.2f}x HAProxy's (bound: 3x)")
        return not self.failures


# --------------------------------------------------------------- report ----

def values(results, key, c, field):
    return [r[field] for r in results.get(key, {}).get(c, []) if r.get("ok") and r.get(field) is not None]


def med(results, key, c, field):
    v = values(results, key, c, field)
    return statistics.median(v) if v else None


def fmt(x, digits):
    if x is None:
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "–"


RATIO_BASES = (("m", "meshgate"), ("h", "haproxy"), ("d", "direct"))


def metric_table(results, key, metrics):
    """metrics: (field, header, digits, ratios) with ratios any of "m"
    (×meshgate), "h" (×haproxy) and "d" (×direct; not for proxy-only figures),
    or "" (none). One row per contender: median (min–max) of the rounds, then
    the ratios."""
    head = ["contender"]
    for _, h, _, ratios in metrics:
        head += [h] + [f"×{base}" for k, base in RATIO_BASES if k in ratios]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CONTENDERS:
        runs = results.get(key, {}).get(c, [])
        failed = sum(1 for r in runs if not r.get("ok"))
        cells = [c + (f" ({failed}/{len(runs)} rounds failed)" if failed else "")]
        for field, _, digits, ratios in metrics:
            v = values(results, key, c, field)
            m = statistics.median(v) if v else None
            cell = fmt(m, digits)
            if len(v) > 1:
                cell += f" ({fmt(min(v), digits)}–{fmt(max(v), digits)})"
            cells.append(cell)
            for k, base in RATIO_BASES:
                if k in ratios:
                    cells.append(ratio(m, med(results, key, base, field)))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ratio_targets(results, rows):
    """Targets as ratios measured in this run: each row is (text, workload,
    field, baseline contender, op, bound), meshgate's median over the
    baseline's; returns (text, measured, met)."""
    out = []
    for text, workload, field, base, op, bound in rows:
        a, b = med(results, workload, "meshgate", field), med(results, workload, base, field)
        if a is None or not b:
            out.append((text, "–", "not measured"))
            continue
        x = a / b
        met = x >= bound if op == ">=" else x <= bound
        out.append((text, f"{x:.2f}", "met" if met else "**not met**"))
    return out


def absolute_target(results, text, workload, field, bound):
    v = med(results, workload, "meshgate", field)
    return (text, fmt(v, 2), "–" if v is None else ("met" if v <= bound else "**not met**"))


def targets(results):
    """Issue 7's targets, as ratios measured in this run: (text, measured, met)."""
    out = ratio_targets(results, [
        ("keep-alive requests/s ≥ 1.2× HAProxy", "keepalive", "rate", "haproxy", ">=", 1.2),
        ("keep-alive requests/s ≥ 0.6× direct", "keepalive", "rate", "direct", ">=", 0.6),
        ("keep-alive p99 ≤ 0.9× HAProxy", "keepalive", "p99_ms", "haproxy", "<=", 0.9),
        ("CPU per 100k kept-alive requests ≤ 0.7× HAProxy", "keepalive", "cpu_per_100k", "haproxy", "<=", 0.7),
        ("CPU per 10k new connections ≤ 0.6× HAProxy", "close", "cpu_per_10k", "haproxy", "<=", 0.6),
        ("new connections/s ≥ 0.95× direct", "close", "rate", "direct", ">=", 0.95),
        ("single-stream bulk ≥ 1.3× HAProxy", "bulk1", "gbps", "haproxy", ">=", 1.3),
        ("8-stream bulk ≥ 0.9× direct", "bulk8", "gbps", "direct", ">=", 0.9),
        ("CPU per GiB ≤ 0.8× HAProxy (1 stream)", "bulk1", "cpu_per_gib", "haproxy", "<=", 0.8),
        ("CPU per GiB ≤ 0.8× HAProxy (8 streams)", "bulk8", "cpu_per_gib", "haproxy", "<=", 0.8),
    ])
    out.append(absolute_target(results, "idle memory ≤ 2 KiB per connection, pipes counted (absolute, KiB)",
                               "idle", "mem_per_conn", 2))
    return out


def targets17(results):
    """Issue 17's targets (the lean reactor), as ratios measured in this run."""
    out = ratio_targets(results, [
        ("proxy CPU per 10k new connections ≤ 0.65× HAProxy", "close", "cpu_per_10k", "haproxy", "<=", 0.65),
        ("new connections/s ≥ 1.1× HAProxy", "close", "rate", "haproxy", ">=", 1.1),
        ("new connections/s ≥ 0.9× direct", "close", "rate", "direct", ">=", 0.9),
        ("proxy CPU per 100k kept-alive requests ≤ 0.75× HAProxy", "keepalive", "cpu_per_100k", "haproxy", "<=", 0.75),
        ("machine CPU per 100k kept-alive requests, over direct, ≤ 0.8× HAProxy's", "keepalive", "mcpu_over_direct",
         "haproxy", "<=", 0.8),
        ("kept-alive requests/s ≥ 1.2× HAProxy", "keepalive", "rate", "haproxy", ">=", 1.2),
        ("kept-alive p99 ≤ 0.8× HAProxy", "keepalive", "p99_ms", "haproxy", "<=", 0.8),
        ("bulk, 1 stream ≥ 1.3× HAProxy", "bulk1", "gbps", "haproxy", ">=", 1.3),
        ("bulk, 8 streams ≥ 1.2× HAProxy", "bulk8", "gbps", "haproxy", ">=", 1.2),
    ])
    out.append(absolute_target(results, "idle RSS per connection ≤ 1.5 KiB (absolute, KiB)", "idle", "rss_per_conn", 1.5))
    return out


def machine_metrics(unit):
    """The machine-CPU columns of a workload table (issue 17)."""
    return [("mcpu_per_unit", f"machine CPU s / {unit}", 3, "d"),
            ("mcpu_over_direct", "machine CPU over direct", 3, "mh")]


def others_share(results):
    """Median share of the machine's busy time, over the measured intervals,
    that went to processes this benchmark did not start."""
    v = [r["others_s"] / r["machine_raw_s"] for w in ("keepalive", "close", "bulk1", "bulk8")
         for runs in results.get(w, {}).values() for r in runs if r.get("machine_raw_s")]
    return (statistics.median(v), max(v)) if v else (None, None)


def sanity(results):
    """Machine CPU must cover the proxy's own: (workload, contender, round) where it does not."""
    bad = []
    for w in ("keepalive", "close", "bulk1", "bulk8"):
        for c, runs in results.get(w, {}).items():
            for i, r in enumerate(runs):
                if r.get("ok") and "machine_s" in r and r["machine_s"] + 2 / CLK_TCK < r.get("cpu_s", 0):
                    bad.append(f"{w} {c} round {i + 1}: machine {r['machine_s']:.2f} s < proxy {r['cpu_s']:.2f} s")
    return bad


def summary_line(R):
    """One line for CI logs: meshgate's CPU ratios against HAProxy, proxy and machine."""
    def x(key, field):
        a, b = med(R, key, "meshgate", field), med(R, key, "haproxy", field)
        return ratio(a, b) + "x"
    return ("summary, meshgate vs HAProxy: keep-alive proxy CPU/100k " + x("keepalive", "cpu_per_100k")
            + ", machine CPU over direct/100k " + x("keepalive", "mcpu_over_direct")
            + "; new conn proxy CPU/10k " + x("close", "cpu_per_10k")
            + ", machine over direct/10k " + x("close", "mcpu_over_direct")
            + "; bulk1 proxy CPU/GiB " + x("bulk1", "cpu_per_gib")
            + ", machine over direct/GiB " + x("bulk1", "mcpu_over_direct"))


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "mem_gib": round(meminfo_kib("MemTotal") / (1 << 20), 1)}


def versions(build):
    def first(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    try:
        rev = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        rev += " + uncommitted changes" if dirty else ""
    except OSError:
        rev = "?"
    mg = first([f"{build}/meshgate", "--version"]).removeprefix("meshgate ")
    return {"meshgate": f"{mg} (git {rev})",
            "haproxy": first(["haproxy", "-v"]).split(" - ")[0], "nginx": first(["nginx", "-v"]),
            "sniproxy": first(["sniproxy", "-V"]), "wrk": first(["wrk", "-v"]).split(" Copyright")[0],
            "openssl": first(["openssl", "version"])}


def report(b, started, busy_before, load_before, elapsed):
    R, P = b.results, b.prof
    mach, ver = machine(), versions(b.build)
    load_after = open("/proc/loadavg").read().split()[:3]
    busy_note = ""
    others = b.others_busy
    if busy_before > 0.10 or (others or 0) > 0.10:
        busy_note = (f"**The machine was busy**: other processes used {busy_before:.0%} of its CPU just "
                     f"before the run and about {others or 0:.0%} during workloads 1-3, so absolute numbers "
                     f"are low and noisy; the ratios within this run are what count.")
    L = []
    L.append("# Side-by-side benchmark: meshgate, HAProxy, nginx, sniproxy, direct\n")
    L.append(f"Written by `bench/compare/run.sh{' --short' if b.args.short else ''}` (issue 7). All numbers come from one run on one machine, everything on 127.0.0.1: "
             "the client, the proxy and the backend share the cores, so a proxy's rate is bounded by what "
             "the client and backend leave it; the CPU-per-unit figures are the steadier ones.\n")
    L.append(f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()} (took {elapsed / 60:.1f} min)")
    L.append(f"- Machine: {mach['nproc']} cores, {mach['cpu']}, {mach['mem_gib']} GiB, Linux {mach['kernel']}")
    L.append(f"- Load from other processes: {busy_before:.0%} of the CPU in the 2 s before the run, "
             f"{'?' if others is None else f'{others:.0%}'} during workloads 1-3 (machine busy time minus "
             f"this benchmark's own); loadavg {' '.join(load_before)} before, {' '.join(load_after)} after")
    if busy_note:
        L.append(f"- {busy_note}")
    L.append(f"- Versions: meshgate {ver['meshgate']}; {ver['haproxy']}; {ver['nginx']}; {ver['sniproxy']}; "
             f"{ver['wrk']}; {ver['openssl']}")
    L.append(f"- Command: `{b.args.command}`")
    L.append(f"- Rounds, interleaved (each round runs every contender once, the start rotating): "
             f"wrk {P['rounds']} × {P['wrk_seconds']} s; bulk {P['bulk_rounds']}; idle {P['idle_rounds']}. "
             f"Figures are medians, with the min–max of the rounds in brackets.")
    L.append(f"- Setup: each proxy runs {b.cores} worker threads/processes; the nginx https backend "
             f"({b.cores} workers, ECDSA P-256 certificate, 100-byte body, no session resumption; wrk negotiates TLS 1.2) and byte_sink ({b.cores} threads) "
             f"are shared by all. meshgate: ServiceEntry STATIC, relay splice (the default), access log, "
             f"metrics, readiness and admin off. HAProxy: `mode tcp`, `req.ssl_sni` map, `option splice-auto`, "
             f"`shards by-thread`. nginx: stream, `ssl_preread`, `reuseport`. sniproxy: one table. "
             f"Proxy CPU = utime+stime of all the proxy's processes over the measured interval.")
    share, worst = others_share(R)
    L.append("- Machine CPU (issue 17) = busy time of all cores from the `cpu` line of /proc/stat (user, nice, "
             "system, irq, softirq, steal: every field but idle and iowait; guest is inside user) over the same "
             "interval, so the load generator, the backend, softirq, ksoftirqd and kworkers count too. The machine "
             "is shared, so the CPU of processes this benchmark did not start is taken out: busy minus (everything "
             "we started + kernel threads), floored at 0. *Over direct* = machine CPU per unit minus direct's in "
             "the same round: what the proxy adds to the whole machine. Other processes took "
             + ("?" if share is None else f"{share:.0%} (median; worst {worst:.0%})")
             + " of the busy time during measured intervals; the raw figures are in the JSON (`machine_raw_s`). "
             "Caveat: through a proxy the client and backend run slower and batch less, and that extra cost "
             "per unit lands in *over direct*. Compare proxies within one run.")
    for bad in sanity(R):
        L.append(f"- Warning: machine CPU below proxy CPU in {bad}")
    for n in ([b.args.note] if b.args.note else []) + b.notes:
        L.append(f"- Note: {n}")
    L.append("")
    L.append("## 1. Requests over kept-alive TLS connections\n")
    L.append(f"wrk, {b.cores} threads, 64 connections, {P['wrk_seconds']} s per round, HTTPS with SNI "
             f"`{HTTPS_SNI}` through the proxy.\n")
    L.append(metric_table(R, "keepalive", [("rate", "requests/s", 0, "md"), ("p50_ms", "p50 ms", 2, "md"),
                                           ("p99_ms", "p99 ms", 2, "md"),
                                           ("cpu_per_100k", "proxy CPU s / 100k req", 3, "mh"),
                                           *machine_metrics("100k req")]))
    L.append("\n## 2. New connection per request\n")
    L.append("wrk with `Connection: close`: every request is a new TCP connection and a full TLS handshake "
             "through the proxy.\n")
    L.append(metric_table(R, "close", [("rate", "connections/s", 0, "md"), ("p99_ms", "p99 ms", 2, "md"),
                                       ("cpu_per_10k", "proxy CPU s / 10k conn", 3, "mh"),
                                       *machine_metrics("10k conn")]))
    L.append("\n## 3. Bulk transfer\n")
    L.append(f"bulk_client → proxy → byte_sink after a real ClientHello; one stream of "
             f"{P['bulk_bytes'] / GIB:g} GiB, then 8 parallel streams of {P['bulk8_bytes'] / GIB:g} GiB; "
             f"the time runs until the sink has acknowledged every byte.\n")
    L.append("Single stream:\n")
    L.append(metric_table(R, "bulk1", [("gbps", "Gbit/s", 2, "md"), ("cpu_per_gib", "proxy CPU s / GiB", 3, "mh"),
                                       *machine_metrics("GiB")]))
    L.append("\n8 streams:\n")
    L.append(metric_table(R, "bulk8", [("gbps", "Gbit/s", 2, "md"), ("cpu_per_gib", "proxy CPU s / GiB", 3, "mh"),
                                       *machine_metrics("GiB")]))
    L.append("\n## 4. Idle connections\n")
    L.append(f"{P['idle_conns']:,} established sessions (each one reached byte_sink) held open through a "
             f"freshly started proxy, warmed up with a few connections first. *RSS*: VmRSS summed over the "
             f"proxy's processes, sessions open minus before, per connection. *Pipes held*: distinct pipes the "
             f"proxy has open while the sessions are (pools included); *pipes added*: how many of those the "
             f"sessions brought. *Memory*: RSS growth plus one 4 KiB page per added pipe, per connection (the "
             f"issue's idle target). *Kernel slab*: growth of Slab in /proc/meminfo per connection; it is "
             f"machine-wide, so it includes the client's and the sink's sockets (direct's figure), which "
             f"*over direct* subtracts, leaving the proxy's two sockets and what else it pins. Noisy when other "
             f"processes run.\n")
    L.append(metric_table(R, "idle", [("rss_per_conn", "RSS KiB/conn", 2, "m"), ("pipes", "pipes held", 0, ""),
                                      ("pipes_added", "pipes added", 0, ""),
                                      ("mem_per_conn", "memory KiB/conn", 2, "m"),
                                      ("slab_per_conn", "kernel slab KiB/conn", 2, ""),
                                      ("slab_extra", "kernel slab over direct", 2, "m")]))
    L.append("\n## Targets (issue 7), as ratios in this run\n")
    L.append("| target | meshgate's ratio | |\n|---|---|---|")
    for text, x, met in targets(R):
        L.append(f"| {text} | {x} | {met} |")
    L.append("\n## Targets (issue 17: the lean reactor), as ratios in this run\n")
    L.append("| target | meshgate's ratio | |\n|---|---|---|")
    for text, x, met in targets17(R):
        L.append(f"| {text} | {x} | {met} |")
    L.append("")
    if b.failures:
        L.append("## meshgate failures\n")
        for f in b.failures:
            L.append(f"- {f}")
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True, help="temp dir for configs, pids, logs")
    ap.add_argument("--build", required=True, help="build dir with meshgate, bench/bulk_client, bench/byte_sink")
    ap.add_argument("--short", action="store_true", help="CI mode: < 2 min, table to stdout")
    ap.add_argument("--rounds", type=int, default=0, help="override the wrk rounds")
    ap.add_argument("--out", help="Markdown report path (default: bench/RESULTS.md in full mode)")
    ap.add_argument("--json", help="raw per-round results as JSON")
    ap.add_argument("--copy", help="also write the Markdown report here (run.sh: the build dir)")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", "21400")))
    ap.add_argument("--command", default="bench/compare/run.sh", help="the command line, for the report")
    ap.add_argument("--note", help="a line added to the report's header")
    ap.add_argument("--contenders", help="comma-separated subset, for debugging (default: all five)")
    args = ap.parse_args()
    if args.contenders:
        global CONTENDERS, PROXIES
        CONTENDERS = [c for c in CONTENDERS if c in args.contenders.split(",")]
        PROXIES = [c for c in CONTENDERS if c != "direct"]

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    b = Bench(args)
    started = datetime.datetime.now().astimezone()
    t0 = time.time()
    load_before = open("/proc/loadavg").read().split()[:3]
    busy_before = cpu_busy_fraction()
    try:
        b.setup()
        if b.failures:
            log("meshgate does not work through the path: " + "; ".join(b.failures))
            return 1
        b.run()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}): stopping everything")
        return 130
    finally:
        b.procs.stop_all()
    ok = b.check()
    text = report(b, started, busy_before, load_before, time.time() - t0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"profile": b.prof, "results": b.results, "failures": b.failures, "notes": b.notes}, f, indent=1)
    out = args.out or (None if args.short else os.path.join(HERE, "..", "RESULTS.md"))
    for path in filter(None, (out, args.copy)):
        with open(path, "w") as f:
            f.write(text)
        log(f"report written to {os.path.normpath(path)}")
    print(text)
    log(summary_line(b.results))
    if not ok:
        log("FAIL: " + "; ".join(b.failures))
        return 1
    log("meshgate works through every path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
