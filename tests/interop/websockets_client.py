"""Python `websockets` as a client of a wsflow echo server: subprotocol, every message echoed
with its type, a ping answered, then a close with 4000 echoed back."""
import asyncio
import os
import ssl
import sys

from websockets.asyncio.client import connect


def messages():
    big = bytes((i * 31 + 7) & 0xFF for i in range(1 << 20))
    return ["hello", "κόσμε 𝄞 日本語", "", bytes(range(256)), big, "x" * 70000]


async def main(url):
    # wss://: trust the test's certificate authority (a PEM file named by WSFLOW_CA).
    tls = None
    if url.startswith("wss://"):
        tls = ssl.create_default_context(cafile=os.environ["WSFLOW_CA"])
    async with connect(url, subprotocols=["chat"], max_size=64 << 20, ssl=tls) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        pong = await ws.ping(b"python ping")
        await asyncio.wait_for(pong, 10)
        for message in messages():
            await ws.send(message)
            echoed = await asyncio.wait_for(ws.recv(), 10)
            assert type(echoed) is type(message) and echoed == message, "message differs"
        await ws.close(4000, "interop done")
        assert ws.close_code == 4000, ws.close_code
    print("ok")


asyncio.run(main(sys.argv[1]))
