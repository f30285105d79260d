"""A stand-in for httpbin in cluster 2: TLS with a required, verified client certificate."""
import json
import socket
import ssl
import sys

host, port, chain, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(chain, key)
ctx.load_verify_locations(root)
ctx.verify_mode = ssl.CERT_REQUIRED  # mTLS: no client certificate, no service
last_sni = None

def remember_sni(sock, name, context):
    global last_sni
    last_sni = name

ctx.sni_callback = remember_sni

def spiffe(cert):
    return next((v for k, v in cert.get("subjectAltName", ()) if k == "URI"), "?")

with socket.create_server((host, port)) as srv:
    print(f"httpbin listening on {host}:{port}", flush=True)
    while True:
        conn, addr = srv.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                peer = spiffe(tls.getpeercert())
                request = tls.recv(65536).decode(errors="replace")
                body = json.dumps({
                    "served_by": "httpbin.bar (cluster-2)",
                    "sni": last_sni,
                    "client_identity": peer,
                    "tls_version": tls.version(),
                    "request_line": request.split("\r\n", 1)[0],
                }, indent=2) + "\n"
                tls.sendall(("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}").encode())
                print(f"httpbin: {tls.version()} from {peer} (sni {last_sni}): "
                      f"{request.splitlines()[0] if request else '-'}", flush=True)
        except (ssl.SSLError, OSError) as e:
            print(f"httpbin: rejected connection from {addr}: {e}", flush=True)
