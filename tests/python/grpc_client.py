"""gRPC calls through the gateway, for tests/tests/grpc.rs (grpcio, raw bytes).

argv: gateway host:port, the authority to ask for (routes match hosts),
then the Authorization values of a principal with access and one
without. Prints one JSON object with what each call returned; with a
fifth argument "get", only the first call's status. GRPC_CA=ca.pem in the
environment: over TLS (ALPN h2) to the gateway, trusting that CA.
"""
import json
import os
import queue
import sys

import grpc

target, authority, allowed, denied = sys.argv[1:5]
if os.environ.get("GRPC_CA"):
    with open(os.environ["GRPC_CA"], "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    # The certificate names the authority; the connection goes to target.
    channel = grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", authority)])
else:
    channel = grpc.insecure_channel(target, options=[("grpc.default_authority", authority)])
prefix = "/demo.Live"
result = {}


def status(call):
    try:
        call()
        return {"code": "OK"}
    except grpc.RpcError as e:
        # A trailers-only answer: its headers are the trailers.
        seen = dict(e.initial_metadata() or ())
        seen.update(dict(e.trailing_metadata() or ()))
        return {"code": e.code().name, "details": e.details(), "reason": seen.get("x-portcullis-reason")}


get = channel.unary_unary(prefix + "/Get")
if sys.argv[5:] == ["get"]:
    print(json.dumps(status(lambda: get(b"x", metadata=[("authorization", allowed)], timeout=10))))
    sys.exit(0)
response, call = get.with_call(b"hello", metadata=[("authorization", allowed)], timeout=10)
result["get"] = json.loads(response)
result["trailers"] = dict(call.trailing_metadata())

# Streaming both ways, interleaved: each message waits for the last reply.
outbox = queue.Queue()


def requests():
    while True:
        message = outbox.get()
        if message is None:
            return
        yield message


chat = channel.stream_stream(prefix + "/Chat")(
    requests(), metadata=[("authorization", allowed)], timeout=10
)
replies = []
for word in [b"one", b"two", b"three"]:
    outbox.put(word)
    replies.append(next(chat).decode())
outbox.put(None)
replies.extend(r.decode() for r in chat)
result["chat"] = replies

fail = channel.unary_unary(prefix + "/Fail")
try:
    fail(b"x", metadata=[("authorization", allowed)], timeout=10)
    result["fail"] = {"code": "OK"}
except grpc.RpcError as e:
    result["fail"] = {
        "code": e.code().name,
        "details": e.details(),
        "trailer": dict(e.trailing_metadata() or ()).get("x-upstream-trailer"),
    }

result["denied"] = status(lambda: get(b"x", metadata=[("authorization", denied)], timeout=10))
result["anonymous"] = status(lambda: get(b"x", timeout=10))
result["unrouted"] = status(
    lambda: channel.unary_unary("/demo.Other/Get")(b"x", metadata=[("authorization", allowed)], timeout=10)
)
print(json.dumps(result), flush=True)
