"""Python `websockets` as an echo server for wsflow's client: accepts `chat`.
Prints `listening on ws://ADDR`."""
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    compression = "deflate" if "--deflate" in sys.argv else None
    async with serve(echo, "127.0.0.1", 0, subprotocols=["chat"], max_size=64 << 20,
                     compression=compression) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


asyncio.run(main())
