"""A WebSocket echo upstream for tests/tests/websocket.rs.

Prints its port, then one JSON line per connection that ends: the close
code and reason the gateway sent it. The first message on every
connection is the X-Portcullis-Principal header it received.
"""
import asyncio
import json

from websockets.asyncio.server import serve


async def handler(ws):
    await ws.send(ws.request.headers.get("X-Portcullis-Principal", ""))
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:
        pass
    print(json.dumps({"closed": ws.close_code, "reason": ws.close_reason}), flush=True)


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


asyncio.run(main())
