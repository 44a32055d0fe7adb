"""A gRPC upstream for tests/tests/grpc.rs (grpcio, raw bytes: no protobuf).

argv: [cert.pem key.pem] for TLS; plaintext HTTP/2 without. Prints its
port. Service demo.Live:
  Get   (unary)  -> JSON of what it saw (principal, message); trailer x-upstream-trailer
  Chat  (bidi)   -> every message back upper-cased, as it arrives
  Fail  (unary)  -> NOT_FOUND "no such thing", trailer x-upstream-trailer
"""
import json
import sys
from concurrent import futures

import grpc


def metadata(context):
    return dict(context.invocation_metadata())


def get(request, context):
    context.set_trailing_metadata((("x-upstream-trailer", "yes"),))
    seen = metadata(context)
    return json.dumps(
        {
            "principal": seen.get("x-portcullis-principal"),
            "authorization": seen.get("authorization"),
            "message": request.decode(),
        }
    ).encode()


def chat(requests, context):
    for message in requests:
        yield message.upper()


def fail(request, context):
    context.set_trailing_metadata((("x-upstream-trailer", "yes"),))
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


handlers = grpc.method_handlers_generic_handler(
    "demo.Live",
    {
        "Get": grpc.unary_unary_rpc_method_handler(get),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    },
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((handlers,))
if len(sys.argv) == 3:
    with open(sys.argv[1], "rb") as c, open(sys.argv[2], "rb") as k:
        credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
else:
    port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
