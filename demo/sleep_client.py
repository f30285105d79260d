"""A stand-in for the sleep pod's sidecar in cluster 1: mTLS with Istio's SNI, verifying the peer's SPIFFE id."""
import socket
import ssl
import sys

host, port, sni, chain, key, root, want_id = sys.argv[1:8]
expect_refused = "--expect-refused" in sys.argv
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_cert_chain(chain, key)
ctx.load_verify_locations(root)
ctx.check_hostname = False  # Istio checks the SPIFFE id, not a DNS name
ctx.set_alpn_protocols(["istio-peer-exchange", "istio"])

try:
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            cert = tls.getpeercert()
            peer = next((v for k, v in cert.get("subjectAltName", ()) if k == "URI"), "")
            if peer != want_id:
                sys.exit(f"peer identity {peer!r} is not {want_id!r}")
            print(f"   {tls.version()} to {peer}, verified against the shared root")
            tls.sendall(b"GET /headers HTTP/1.1\r\nHost: httpbin.bar.global:8000\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    if expect_refused:
        sys.exit("expected the gateway to refuse this SNI, but it answered")
    print("   httpbin answered:")
    print("\n".join("     " + line for line in answer.decode().splitlines()))
except (ssl.SSLError, ConnectionError, OSError) as e:
    if not expect_refused:
        raise
    print(f"   refused as expected: {type(e).__name__}: {e}")
