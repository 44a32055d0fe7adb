"""WebSocket clients through the gateway, for tests/tests/websocket.rs.

argv: url, then the Authorization values of a principal that will lose
access, one that keeps it, and one that never had it. Prints one JSON line
per step; after "ready" it waits for a line on stdin (the test swaps the
snapshot), then reports how each open connection fared.
"""
import json
import sys

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

url, losing, keeping, never = sys.argv[1:5]


def out(**kw):
    print(json.dumps(kw), flush=True)


def refused(headers):
    try:
        connect(url, additional_headers=headers, open_timeout=5).close()
        return {"status": 101}
    except InvalidStatus as e:
        return {
            "status": e.response.status_code,
            "reason": e.response.headers.get("X-Portcullis-Reason"),
        }


out(step="never", **refused({"Authorization": never}))
out(step="anonymous", **refused({}))

with connect(url, additional_headers={"Authorization": losing}, open_timeout=5) as lose, \
        connect(url, additional_headers={"Authorization": keeping}, open_timeout=5) as keep:
    hello = [lose.recv(timeout=5), keep.recv(timeout=5)]
    lose.send("ping from the one who loses")
    keep.send(b"\x00\x01binary" * 5000)
    echoes = [lose.recv(timeout=5), len(keep.recv(timeout=5))]
    out(step="ready", hello=hello, echoes=echoes)

    sys.stdin.readline()
    try:
        message = lose.recv(timeout=10)
        out(step="losing", message=message)
    except ConnectionClosed as e:
        rcvd = e.rcvd
        out(step="losing", code=rcvd.code if rcvd else None, reason=rcvd.reason if rcvd else None)
    keep.send("still here")
    out(step="keeping", echo=keep.recv(timeout=5))
