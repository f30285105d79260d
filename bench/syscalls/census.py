#!/usr/bin/env python3
"""Syscall census behind bench/syscalls/run.sh (issue 17): how many system
calls each proxy makes per new TLS connection and per kept-alive request.

It starts the backends and contenders exactly as bench/compare/bench.py does
(its Bench class, imported), then for each contender in turn:
  1. idle: `strace -c -f` attached for IDLE_S seconds with no traffic, to show
     the background rate that the workload figures include;
  2. new connections: strace attached, wrk with `Connection: close` makes
     exactly --conns requests (each a new TCP connection and a full TLS
     handshake through the proxy), the proxy drains, strace detached;
  3. kept-alive: the same with --requests requests over --keepalive-conns
     connections.
strace's -c table is parsed and each syscall's count divided by the units wrk
reports as completed. Only counts are reported: strace's times are inflated
by ptrace, its counts are not (except for waits; see README.md).
"""

import argparse
import datetime
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "compare"))
import bench as cmp  # noqa: E402  bench/compare/bench.py

ALL = ["meshgate", "haproxy", "sniproxy", "nginx"]
IDLE_S = 2.0
ACCEPTS = ("accept", "accept4")


def log(msg):
    print(f"[syscalls {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -------------------------------------------------------------- strace ----

def parse_strace_c(text):
    """{syscall: (calls, errors)} from `strace -c` output (strace(1), -c:
    columns % time, seconds, usecs/call, calls, errors, syscall; errors is
    blank when zero). The total line and headers are skipped."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or f[-1] == "total" or not f[0][0].isdigit():
            continue
        try:
            calls = int(f[3])
            errors = int(f[4]) if len(f) == 6 else 0
        except ValueError:
            continue
        out[f[-1]] = (calls, errors)
    return out


# Calls whose arguments say what they are for: the detail pass traces these
# one by one and tallies them by operation (the -c table only has names).
DETAIL = ["epoll_ctl", "setsockopt", "getsockopt", "ioctl", "fcntl", "shutdown", "clock_gettime", "accept",
          "accept4", "connect", "poll", "sendmsg", "recvmsg", "getsockname", "timerfd_settime"]
CALL = re.compile(r"^(\w+)\((.*)$")
RESULT = re.compile(r"^(.*)\)\s+=\s+(\S.*)$")  # greedy: the last ") = " closes the call


def detail_key(name, args):
    """The part of a call's decoded arguments (strace's syntax) that says
    what it does: epoll_ctl's op and events, setsockopt's level and option,
    ioctl's request, accept4's flags, and so on."""
    a = [x.strip() for x in re.split(r",(?![^{\[]*[}\]])", args)]
    if name == "epoll_ctl" and len(a) > 1:
        ev = re.search(r"events=([A-Z|]+)", args)
        return a[1].removeprefix("EPOLL_CTL_") + (" " + ev.group(1) if ev and a[1] != "EPOLL_CTL_DEL" else "")
    if name in ("setsockopt", "getsockopt") and len(a) > 2:
        return f"{a[1]} {a[2]}"
    if name in ("ioctl", "fcntl", "shutdown") and len(a) > 1:
        return a[1]
    if name == "clock_gettime":  # a negative id is another thread's CPU clock (clock_getcpuclockid(3))
        return "a thread's CPU clock" if a[0].startswith("0x") else a[0]
    if name == "accept4" and len(a) > 3:
        return a[3].split(")")[0]
    if name == "sendmsg" and len(a) > 1:
        return "with cmsg" if "msg_control=" in args and "msg_controllen=0" not in args else ""
    return ""


def parse_strace_lines(lines):
    """{"name: key": (calls, errors)} from strace's line-per-call output with
    -f: each line starts with the thread id, and a call another thread
    interrupted is split into "name(args <unfinished ...>" and
    "<... name resumed>args) = result" (strace(1), -f), joined again here."""
    out, pending = {}, {}
    for line in lines:
        line = line.rstrip("\n")
        tid, _, body = line.partition(" ")
        if not tid.isdigit():
            tid, body = "", line
        body = body.lstrip()
        if body.endswith("<unfinished ...>"):
            pending[tid] = body[:-len("<unfinished ...>")].rstrip()
            continue
        if body.startswith("<..."):
            body = pending.pop(tid, "") + body.split(" resumed>", 1)[-1]
        m = CALL.match(body)
        r = RESULT.match(m.group(2)) if m else None
        if not r:
            continue  # signals, exits
        name, (args, result) = m.group(1), r.groups()
        key = name + (": " + k if (k := detail_key(name, args)) else "")
        calls, errors = out.get(key, (0, 0))
        out[key] = (calls + 1, errors + result.startswith("-1 "))
    return out


class Strace:
    """`strace -c -f -p PID...` over every process of a contender (nginx's
    master and workers; -f makes strace attach every thread of each, see
    strace(1)). Counting starts once strace says each pid is attached and
    ends at SIGINT, on which it detaches and writes the summary."""

    def __init__(self, pids, path, detail=None):
        self.path, self.detail = path, detail
        argv = ["strace", "-f", "-o", path] + (["-e", "trace=" + ",".join(detail)] if detail else ["-c"])
        for p in pids:
            argv += ["-p", str(p)]
        self.err = open(path + ".stderr", "w+")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err,
                                  start_new_session=True)
        deadline = time.time() + 15
        while True:
            self.err.seek(0)
            attached = self.err.read().count(" attached")
            if attached >= len(pids):
                break
            if self.p.poll() is not None or time.time() > deadline:
                self.err.seek(0)
                sys.exit(f"syscalls: strace did not attach to {pids}: {self.err.read()[-400:]}")
            time.sleep(0.02)

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=30)
        self.err.close()
        with open(self.path) as f:
            return parse_strace_lines(f) if self.detail else parse_strace_c(f.read())


# ----------------------------------------------------------------- bench ----

def socket_fds(pids):
    n = 0
    for p in pids:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    n += os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:")
                except OSError:
                    pass
        except OSError:
            pass
    return n


class Census(cmp.Bench):
    """bench/compare's Bench with the meshgate binary overridable and a
    smoke test that needs only the HTTPS path (no bulk_client)."""

    def __init__(self, args):
        super().__init__(args)
        self.meshgate = args.meshgate
        start, extra = self.procs.start, args.meshgate_args

        def start_with_extra(name, argv, *rest, **kw):  # MESHGATE_ARGS, e.g. a reactor choice
            return start(name, argv + extra if name == "meshgate" else argv, *rest, **kw)
        self.procs.start = start_with_extra
        # count.lua's last reconnect of each wrk thread lands here, not on the
        # proxy; never accepted, closed when the census ends.
        self.park = socket.socket()
        self.park.bind(("127.0.0.1", 0))
        self.park.listen(1024)
        self.park_port = self.park.getsockname()[1]

    def bin(self, name):
        if name == "meshgate" and self.meshgate:
            return self.meshgate
        return super().bin(name)

    def smoke(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for c in cmp.PROXIES:
            try:
                with socket.create_connection(("127.0.0.1", self.port[c]), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname=cmp.HTTPS_SNI) as s:
                        s.sendall(f"GET / HTTP/1.1\r\nHost: {cmp.HTTPS_SNI}\r\nConnection: close\r\n\r\n".encode())
                        data = b""
                        while chunk := s.recv(4096):
                            data += chunk
            except OSError as e:
                data = str(e).encode()
            if not data.startswith(b"HTTP/1.1 200"):
                sys.exit(f"syscalls: {c} does not route HTTPS: {data[:200]!r}\n{self.procs.log_tail(c)}")
            log(f"{c}: routes https")

    def wrk(self, c, units, conns, close):
        threads = conns  # one connection per wrk thread: see count.lua
        argv = ["wrk", f"-t{threads}", f"-c{conns}", "-d300s", "--timeout", "10s", "-s", f"{HERE}/count.lua"]
        if close:
            argv += ["-H", "Connection: close"]
        argv += [f"https://{cmp.HTTPS_SNI}:{self.port[c]}/", "--", str(units), str(threads), str(self.park_port)]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stopped, lines = 0, []
        for out in p.stdout:  # wrk's banner, then one line per stopped thread from count.lua
            lines.append(out)
            stopped += out.startswith("bench_thread_stopped")
            if stopped == threads:
                break
        deadline = time.time() + 60
        while p.poll() is None and time.time() < deadline:
            # wrk's SIGINT handler ends main's sleep(duration); it is installed
            # only after the threads start, so repeat until wrk exits.
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        rest, err = p.communicate(timeout=10)
        stdout = "".join(lines) + rest
        line = next((l for l in stdout.splitlines() if l.startswith('{"bench_wrk"')), None)
        if p.returncode != 0 or line is None:
            sys.exit(f"syscalls: wrk failed against {c}: {(err or stdout)[-400:]}")
        r = json.loads(line)
        r["argv"] = " ".join(argv)
        return r

    def drained(self, pids, sockets0, timeout=20.0):
        """Waits until the proxy holds no more sockets than before the workload:
        every connection it accepted has been closed on both sides."""
        deadline = time.time() + timeout
        while socket_fds(pids) > sockets0:
            if time.time() > deadline:
                log(f"  warning: proxy still holds {socket_fds(pids) - sockets0} extra sockets")
                return False
            time.sleep(0.02)
        return True

    def traced(self, c, tag, fn, detail=None):
        """Runs fn() with strace attached to contender c: (counts, fn's result, seconds)."""
        pids = self.contender_pids(c)
        sockets0 = socket_fds(pids)
        st = Strace(pids, f"{self.work}/strace-{c}-{tag}.txt", detail)
        t0 = time.time()
        result = fn()
        if result is not None:
            self.drained(pids, sockets0)
        secs = time.time() - t0
        return st.stop(), result, secs

    def measure(self, c, a):
        out = {}
        counts, _, secs = self.traced(c, "idle", lambda: time.sleep(IDLE_S))
        out["idle"] = {"counts": counts, "seconds": secs}
        self.wrk(c, a.warmup, a.keepalive_conns, close=True)  # first routes, lazy inits
        for key, units, conns, close in (("close", a.conns, a.close_conns, True),
                                         ("keepalive", a.requests, a.keepalive_conns, False)):
            counts, r, secs = self.traced(c, key, lambda: self.wrk(c, units, conns, close))
            errors = sum(r["errors"].values())
            out[key] = {"counts": counts, "units": r["requests"], "wrk_errors": r["errors"], "seconds": secs,
                        "wrk": r["argv"]}
            accepted = sum(counts.get(s, (0, 0))[0] - counts.get(s, (0, 0))[1] for s in ACCEPTS)
            log(f"  {c} {key}: {r['requests']} units, {errors} wrk errors, {accepted} accepted, "
                f"{sum(v[0] for v in counts.values())} syscalls, {secs:.1f} s")
            if errors or r["requests"] < units:
                log(f"  warning: {c} {key}: wrk errors {r['errors']}, {r['requests']} of {units} completed")
        for key, units, conns, close in (("close_detail", a.detail_conns, a.close_conns, True),
                                         ("keepalive_detail", a.detail_conns * 10, a.keepalive_conns, False)):
            if units:
                counts, r, secs = self.traced(c, key, lambda: self.wrk(c, units, conns, close), DETAIL)
                out[key] = {"counts": counts, "units": r["requests"], "wrk_errors": r["errors"], "seconds": secs}
        return out


# ---------------------------------------------------------------- report ----

def cell(calls, errors, units):
    def num(x):
        return f"{x:.2f}" if x >= 0.005 else "<0.01"
    if not calls:
        return "–"
    return num(calls / units) + (f" ({num(errors / units)} err)" if errors else "")


def accepted(counts):
    return sum(counts.get(s, (0, 0))[0] - counts.get(s, (0, 0))[1] for s in ACCEPTS)


def count_rows(results, key, unit, label="syscall"):
    """Markdown rows: one per syscall (or per operation), one column per
    contender, calls per unit; ordered by the first contender's count, then
    the largest anyone's."""
    cs = [c for c in results if results[c].get(key, {}).get("units")]
    names = sorted({n for c in cs for n in results[c][key]["counts"]})
    order = sorted(names, key=lambda n: (-results[cs[0]][key]["counts"].get(n, (0, 0))[0],
                                         -max(results[c][key]["counts"].get(n, (0, 0))[0] for c in cs), n))
    L = [f"| {label} per {unit} | " + " | ".join(cs) + " |", "|---|" + "---:|" * len(cs)]
    for n in order:
        shown = n.replace("|", "\\|")  # GFM: a pipe inside a table cell, even in code, is escaped
        L.append(f"| `{shown}` | " + " | ".join(cell(*results[c][key]["counts"].get(n, (0, 0)),
                                                  results[c][key]["units"]) for c in cs) + " |")
    return cs, L


def table(results, key, unit):
    cs, L = count_rows(results, key, unit)
    for title, skip in (("**total**", ()), ("total without `epoll_wait`", ("epoll_wait",))):
        tot = []
        for c in cs:
            v = [x for n, x in results[c][key]["counts"].items() if n not in skip]
            tot.append(cell(sum(x[0] for x in v), sum(x[1] for x in v), results[c][key]["units"]))
        L.append(f"| {title} | " + " | ".join(f"**{t}**" if "**" in title else t for t in tot) + " |")
    L += ["", "| | " + " | ".join(cs) + " |", "|---|" + "---:|" * len(cs)]
    L.append(f"| {unit}s completed (wrk) | " + " | ".join(f"{results[c][key]['units']:,}" for c in cs) + " |")
    L.append("| connections accepted by the proxy | " + " | ".join(
        f"{accepted(results[c][key]['counts']):,}" for c in cs) + " |")
    L.append("| traced interval, s | " + " | ".join(f"{results[c][key]['seconds']:.1f}" for c in cs) + " |")
    L.append("| idle background in that interval, calls per " + unit + " (not subtracted) | " + " | ".join(
        f"{idle_rate(results[c]) * results[c][key]['seconds'] / results[c][key]['units']:.3f}" for c in cs) + " |")
    return "\n".join(L)


def detail_table(results, key, unit):
    if not any(results[c].get(key, {}).get("units") for c in results):
        return "(skipped: --detail-conns 0)"
    cs, L = count_rows(results, key, unit, "operation")
    L.append("| " + unit + "s completed (wrk) | " + " | ".join(f"{results[c][key]['units']:,}" for c in cs) + " |")
    return "\n".join(L)


def idle_rate(r):
    i = r["idle"]
    return sum(v[0] for v in i["counts"].values()) / max(1e-9, i["seconds"])


def idle_table(results):
    cs = list(results)
    names = sorted({n for c in cs for n in results[c]["idle"]["counts"]})
    L = ["| idle syscall per second | " + " | ".join(cs) + " |", "|---|" + "---:|" * len(cs)]
    for n in names:
        L.append(f"| `{n}` | " + " | ".join(
            f"{results[c]['idle']['counts'].get(n, (0, 0))[0] / results[c]['idle']['seconds']:.1f}" for c in cs) + " |")
    L.append("| **total** | " + " | ".join(f"**{idle_rate(results[c]):.1f}**" for c in cs) + " |")
    return "\n".join(L)


def report(b, a, results, started, elapsed):
    ver = cmp.versions(b.build)
    if a.meshgate:
        ver["meshgate"] = subprocess.run([a.meshgate, "--version"], capture_output=True,
                                         text=True).stdout.strip().removeprefix("meshgate ") + f" ({a.meshgate})"
    L = [f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z')} (took {elapsed:.0f} s)",
         f"- Kernel: Linux {os.uname().release}; {os.cpu_count()} cores; meshgate {ver['meshgate']}"
         f"{' run with `' + a.meshgate_args + '`' if a.meshgate_args else ''}; "
         f"{ver['haproxy']}; {ver['sniproxy']}; {ver['nginx']}; {ver['wrk']}; "
         f"{subprocess.run(['strace', '-V'], capture_output=True, text=True).stdout.splitlines()[0]}",
         f"- Command: `{a.command}`",
         f"- New connections: wrk `-t{a.close_conns} -c{a.close_conns}` with `Connection: close`, "
         f"stopped after {a.conns:,} responses; kept-alive: wrk `-t{a.keepalive_conns} "
         f"-c{a.keepalive_conns}`, stopped after {a.requests:,} responses. Each proxy runs {b.cores} workers, "
         f"configured as in bench/compare; backend: bench/compare's nginx HTTPS server.",
         "",
         "### New connection (one HTTPS request per TLS connection)", "",
         table(results, "close", "connection"), "",
         "### Kept-alive request", "",
         table(results, "keepalive", "request"), "",
         "### What the setup calls do", "",
         f"A second, shorter pass traces only {', '.join(f'`{n}`' for n in DETAIL)} one by one "
         f"({a.detail_conns:,} new connections, then {a.detail_conns * 10:,} kept-alive requests) and "
         "tallies them by the arguments strace decodes.", "",
         "New connection:", "",
         detail_table(results, "close_detail", "connection"), "",
         "Kept-alive request:", "",
         detail_table(results, "keepalive_detail", "request"), "",
         f"### Idle background ({IDLE_S:g} s traced with no traffic)", "",
         idle_table(results), ""]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--build", required=True, help="build dir with byte_sink (and meshgate unless --meshgate)")
    ap.add_argument("--meshgate", help="meshgate binary (default: BUILD/meshgate)")
    ap.add_argument("--meshgate-args", default=os.environ.get("MESHGATE_ARGS", ""),
                    help="extra meshgate arguments, space-separated (default: $MESHGATE_ARGS)")
    ap.add_argument("--contenders", default=",".join(ALL))
    ap.add_argument("--conns", type=int, default=1000, help="new connections traced")
    ap.add_argument("--close-conns", type=int, default=4, help="wrk connections in flight, new-connection workload")
    ap.add_argument("--requests", type=int, default=10000, help="kept-alive requests traced")
    ap.add_argument("--keepalive-conns", type=int, default=4, help="kept-alive connections")
    ap.add_argument("--detail-conns", type=int, default=100,
                    help="new connections (and 10x kept-alive requests) of the per-operation pass; 0: skip it")
    ap.add_argument("--warmup", type=int, default=100, help="untraced new connections first")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", "22400")))
    ap.add_argument("--out", help="also write the Markdown here")
    ap.add_argument("--json", help="raw counts as JSON")
    ap.add_argument("--command", default="bench/syscalls/run.sh")
    a = ap.parse_args()
    chosen = [c for c in ALL if c in a.contenders.split(",")]
    cmp.CONTENDERS, cmp.PROXIES = chosen, chosen  # Bench.setup starts cmp.PROXIES
    b = Census(argparse.Namespace(work=a.work, build=a.build, short=True, rounds=0, port_base=a.port_base,
                                  meshgate=a.meshgate, meshgate_args=a.meshgate_args.split()))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    started, t0 = datetime.datetime.now().astimezone(), time.time()
    results = {}
    try:
        b.setup()
        for c in chosen:
            log(f"{c}: tracing")
            results[c] = b.measure(c, a)
            if not b.procs.alive(c):
                sys.exit(f"syscalls: {c} exited:\n{b.procs.log_tail(c)}")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e})")
        return 130
    finally:
        b.procs.stop_all()
    text = report(b, a, results, started, time.time() - t0)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        log(f"tables written to {a.out}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
