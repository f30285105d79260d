#!/usr/bin/env python3
"""A test Kubernetes API server speaking the real wire format over TLS.

Behaviour follows "API Concepts" (https://kubernetes.io/docs/reference/using-api/api-concepts/):
- lists carry metadata.resourceVersion and, with ?limit=, metadata.continue
  ("Retrieving large results sets in chunks");
- ?watch=1 answers a chunked stream (Transfer-Encoding: chunked) of JSON lines
  {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}
  ("Efficient detection of changes", "Watch bookmarks");
- a resourceVersion older than the compaction point is "410 Gone", either as
  the HTTP status or as an ERROR event carrying a Status with code 410 and
  reason Expired ("410 Gone responses");
- every request needs "Authorization: Bearer <token>" or a client
  certificate signed by the CA; 401 otherwise.

The test drives it over stdin, one JSON command a line, each answered by one
JSON line on stdout; the first stdout line is {"port": N}. stdin closing stops it.
"""

import argparse
import base64
import copy
import http.server
import json
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

DEFAULT_RESOURCES = {
    # path prefix and resource -> list kind
    ("/api/v1", "pods"): "Pod",
    ("/api/v1", "services"): "Service",
    ("/api/v1", "namespaces"): "Namespace",
    ("/apis/discovery.k8s.io/v1", "endpointslices"): "EndpointSlice",
}


class Store:
    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 1000
        self.kinds = dict(DEFAULT_RESOURCES)
        self.objects = {k: {} for k in self.kinds}  # (prefix, resource) -> {(ns, name): obj}
        self.log = []  # (seq, rv, key, line-dict) events and injected lines
        self.seq = 0
        self.compacted = 0
        self.gone_as = "event"  # or "status"
        self.token = "token-1"
        self.down = False
        self.stall = False
        self.generation = 0  # bumped to end every open watch
        self.groups = {}  # group name -> [versions]
        self.counts = {"lists": 0, "watches": 0, "unauthorized": 0, "gone": 0}

    def next_rv(self):
        self.rv += 1
        return self.rv

    def append(self, key, event, rv):
        self.seq += 1
        self.log.append((self.seq, rv, key, event))
        self.cond.notify_all()


STORE = Store()


def parse_path(path):
    """(prefix, namespace or None, resource) or None; ("group", name) for /apis/<group>."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        prefix, rest = "/" + "/".join(parts[:2]), parts[2:]
    elif len(parts) == 2 and parts[0] == "apis":
        return ("group", parts[1])
    elif len(parts) >= 3 and parts[0] == "apis":
        prefix, rest = "/" + "/".join(parts[:3]), parts[3:]
    else:
        return None
    if len(rest) == 3 and rest[0] == "namespaces":
        return (prefix, rest[1], rest[2])
    if len(rest) == 1:
        return (prefix, None, rest[0])
    return None


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        if self.connection.getpeercert():
            return True
        with STORE.cond:
            ok = self.headers.get("Authorization") == "Bearer " + STORE.token
            if not ok:
                STORE.counts["unauthorized"] += 1
        return ok

    def do_GET(self):
        if not self.authorized():
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        parsed = parse_path(url.path)
        if parsed and parsed[0] == "group":
            return self.group(parsed[1])
        key = (parsed[0], parsed[2]) if parsed else None
        with STORE.cond:
            known = key in STORE.kinds
        if not known:
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        if query.get("watch") in ("1", "true"):
            return self.watch(key, parsed[1], query)
        return self.list(key, parsed[1], query)

    def group(self, name):
        with STORE.cond:
            versions = STORE.groups.get(name)
        if versions is None:
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": name,
                             "versions": entries, "preferredVersion": entries[0]})

    def list(self, key, ns, query):
        limit = int(query.get("limit", "0") or 0)
        with STORE.cond:
            STORE.counts["lists"] += 1
            start, list_rv = "", STORE.rv
            if query.get("continue"):
                token = json.loads(base64.b64decode(query["continue"]))
                start, list_rv = token["start"], token["rv"]
                if list_rv < STORE.compacted:
                    STORE.counts["gone"] += 1
                    return self.send_json(410, status(410, "Expired", "The provided continue parameter is too old"))
            names = sorted(k for k in STORE.objects[key] if ns is None or k[0] == ns)
            names = [k for k in names if "/".join(k) > start]
            page = names[:limit] if limit > 0 else names
            items = [copy.deepcopy(STORE.objects[key][k]) for k in page]
            kind = STORE.kinds[key]
        meta = {"resourceVersion": str(list_rv)}
        if len(page) < len(names):
            meta["continue"] = base64.b64encode(json.dumps({"start": "/".join(page[-1]), "rv": list_rv}).encode()).decode()
            meta["remainingItemCount"] = len(names) - len(page)
        api_version = key[0].split("/", 2)[-1] if key[0].startswith("/apis/") else "v1"
        self.send_json(200, {"kind": kind + "List", "apiVersion": api_version, "metadata": meta, "items": items})

    def chunk(self, event):
        data = (json.dumps(event) + "\n").encode() if isinstance(event, dict) else event.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, key, ns, query):
        rv = int(query.get("resourceVersion", "0") or 0)
        timeout = float(query.get("timeoutSeconds", "1800"))
        with STORE.cond:
            STORE.counts["watches"] += 1
            gone = rv < STORE.compacted
            if gone:
                STORE.counts["gone"] += 1
            gone_as, generation = STORE.gone_as, STORE.generation
            message = f"too old resource version: {rv} ({STORE.compacted})"
        if gone and gone_as == "status":
            return self.send_json(410, status(410, "Gone", message))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if gone:
            self.chunk({"type": "ERROR", "object": status(410, "Expired", message)})
        else:
            self.stream(key, ns, rv, timeout, generation)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def stream(self, key, ns, rv, timeout, generation):
        """Replays the events after rv, then follows new ones until the
        timeout, close_watches, a token rotation or "down" (an abrupt end)."""
        deadline = time.monotonic() + timeout
        with STORE.cond:
            start_seq = STORE.seq  # injected lines only reach watches open now
        seen = 0
        while True:
            with STORE.cond:
                while True:
                    if STORE.down:
                        raise ConnectionAbortedError("the server went away")
                    if STORE.generation != generation:
                        return
                    pending = [(s, e) for (s, erv, k, e) in STORE.log
                               if s > seen and k == key and (ns is None or e.get("ns") in (None, ns))
                               and ((erv is not None and erv > rv) or (erv is None and s > start_seq))]
                    if pending and not STORE.stall:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0 and not STORE.stall:
                        return
                    STORE.cond.wait(timeout=max(min(left, 0.5), 0.05))
            for s, e in pending:
                seen = s
                self.chunk(e["line"])


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, tls):
        super().__init__(address, Handler)
        self.tls = tls

    def verify_request(self, request, client_address):
        with STORE.cond:
            return not STORE.down  # "gone": accepted and closed at once

    def finish_request(self, request, client_address):
        try:
            request = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        pass


def event_for(kind, obj, event_type):
    meta = obj.get("metadata", {})
    return {"ns": meta.get("namespace"), "line": {"type": event_type, "object": obj}}


def command(cmd):
    op = cmd["op"]
    with STORE.cond:
        if op in ("add", "modify", "delete"):
            key = (cmd["prefix"], cmd["resource"])
            obj = copy.deepcopy(cmd["object"])
            meta = obj.setdefault("metadata", {})
            name = (meta.get("namespace") or "", meta["name"])
            rv = STORE.next_rv()
            meta["resourceVersion"] = str(rv)
            if op == "delete":
                obj = STORE.objects[key].pop(name, obj)
                obj["metadata"]["resourceVersion"] = str(rv)
            else:
                STORE.objects[key][name] = obj
            STORE.append(key, event_for(STORE.kinds[key], obj, {"add": "ADDED", "modify": "MODIFIED", "delete": "DELETED"}[op]), rv)
            return {"rv": rv}
        if op == "bookmark":
            key = (cmd["prefix"], cmd["resource"])
            rv = STORE.next_rv()
            obj = {"kind": STORE.kinds[key], "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}}
            STORE.append(key, {"line": {"type": "BOOKMARK", "object": obj}}, rv)
            return {"rv": rv}
        if op == "raw":  # a line as is (malformed JSON tests)
            key = (cmd["prefix"], cmd["resource"])
            STORE.append(key, {"line": cmd["line"]}, None)
            return {}
        if op == "close_watches":
            STORE.generation += 1
        elif op == "compact":
            STORE.compacted = STORE.rv
        elif op == "gone_as":
            STORE.gone_as = cmd["as"]
        elif op == "token":
            STORE.token = cmd["token"]
            STORE.generation += 1
        elif op == "down":
            STORE.down = True
        elif op == "up":
            STORE.down = False
        elif op == "stall":
            STORE.stall = cmd.get("on", True)
        elif op == "register":
            key = (cmd["prefix"], cmd["resource"])
            STORE.kinds[key] = cmd["kind"]
            STORE.objects.setdefault(key, {})
        elif op == "group":
            STORE.groups[cmd["name"]] = cmd["versions"]
        elif op != "counts":
            return {"error": "unknown op " + op}
        STORE.cond.notify_all()
        return {"rv": STORE.rv, **STORE.counts}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cert", required=True, help="server chain, PEM")
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True, help="client certificates are verified against it")
    parser.add_argument("--token", default="token-1")
    args = parser.parse_args()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    tls.load_verify_locations(args.ca)
    tls.verify_mode = ssl.CERT_OPTIONAL
    STORE.token = args.token
    server = Server(("127.0.0.1", 0), tls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = command(json.loads(line))
        except Exception as e:  # a test bug: say so instead of dying
            reply = {"error": repr(e)}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
