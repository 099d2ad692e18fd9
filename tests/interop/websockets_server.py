"""Python `websockets` as an echo server for wsflow's client: accepts `chat`.
`--cert CHAIN.pem --key KEY.pem` serves wss://. Prints `listening on ws://ADDR` (or wss://)."""
import asyncio
import ssl
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    compression = "deflate" if "--deflate" in sys.argv else None
    tls = None
    if "--cert" in sys.argv:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[sys.argv.index("--cert") + 1],
                            sys.argv[sys.argv.index("--key") + 1])
    async with serve(echo, "127.0.0.1", 0, subprotocols=["chat"], max_size=64 << 20,
                     compression=compression, ssl=tls) as server:
        port = server.sockets[0].getsockname()[1]
        scheme = "wss" if tls else "ws"
        print(f"listening on {scheme}://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


asyncio.run(main())
