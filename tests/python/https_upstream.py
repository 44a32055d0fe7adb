"""An HTTP/1.1 upstream over TLS for tests/tests/grpc.rs.

argv: cert.pem key.pem. Prints its port; answers every GET with JSON: the
path, the principal header, the SNI name the client sent, the protocol.
"""
import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sni = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps(
            {
                "path": self.path,
                "principal": self.headers.get("X-Portcullis-Principal"),
                "sni": sni.get("name"),
                "version": self.request_version,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
context.sni_callback = lambda sock, name, ctx: sni.__setitem__("name", name)
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
