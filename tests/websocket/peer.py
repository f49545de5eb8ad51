"""WebSocket peers for tests/websocket.rs, from the `websockets` library (a real client
and server, not ringway's code).

    peer.py server PORT        echo server on 127.0.0.1:PORT; a text message "close:N"
                               makes it close the connection with code N
    peer.py client URL         runs the client checks through URL and prints one line per
                               check; exits non-zero on the first failure
"""

import asyncio
import os
import sys

import websockets


async def echo(ws):
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close:"):
                await ws.close(code=int(message[6:]), reason="server closes")
                return
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def server(port):
    async with websockets.serve(echo, "127.0.0.1", port, max_size=None, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


async def client(url):
    async with websockets.connect(url, max_size=None, compression=None, open_timeout=10) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        print("text ok", flush=True)

        payload = os.urandom(1 << 20)
        await ws.send(payload)
        assert await ws.recv() == payload
        print("large binary ok", flush=True)

        # One message in 100 fragments.
        parts = [f"part{i:03d}-" for i in range(100)]
        await ws.send(iter(parts))
        assert await ws.recv() == "".join(parts)
        print("fragmented ok", flush=True)

        # Many small messages in flight at once, both ways.
        for i in range(200):
            await ws.send(f"m{i}")
        for i in range(200):
            assert await ws.recv() == f"m{i}"
        print("pipelined ok", flush=True)
    # The client closed; the closing handshake went through ringway.
    assert ws.close_code == 1000, ws.close_code
    print("client close ok", flush=True)

    async with websockets.connect(url, open_timeout=10) as ws:
        await ws.send("close:4000")
        try:
            await ws.recv()
            raise AssertionError("the server's close did not arrive")
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4000, closed
    print("server close ok", flush=True)


if __name__ == "__main__":
    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "server":
        asyncio.run(server(int(arg)))
    else:
        asyncio.run(client(arg))
