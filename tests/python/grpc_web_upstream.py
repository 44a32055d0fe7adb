"""A gRPC-Web upstream for tests/tests/grpc.rs: sonora's WSGI application
(a gRPC-Web server on grpcio's handler interface) on a threaded wsgiref
server, raw bytes (no protobuf). Prints its port. Service demo.Live:
  Get   (unary)         -> JSON of what it saw (principal, message)
  Watch (server stream) -> b"tick N" every 50 ms, 2400 of them (two minutes)
Answers application/grpc-web+proto, or -text (base64) when asked by Accept.
"""
import json
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
from sonora.wsgi import grpcWSGI


def get(request, context):
    seen = dict(context.invocation_metadata())
    return json.dumps(
        {
            "principal": seen.get("x-portcullis-principal"),
            "message": request.decode(),
        }
    ).encode()


def watch(request, context):
    for n in range(2400):
        yield f"tick {n}".encode()
        time.sleep(0.05)


# sonora calls the (de)serializers itself: raw bytes both ways.
raw = {"request_deserializer": bytes, "response_serializer": bytes}
handlers = grpc.method_handlers_generic_handler(
    "demo.Live",
    {
        "Get": grpc.unary_unary_rpc_method_handler(get, **raw),
        "Watch": grpc.unary_stream_rpc_method_handler(watch, **raw),
    },
)
application = grpcWSGI(None)
application.add_generic_rpc_handlers((handlers,))


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, application, server_class=Server, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
