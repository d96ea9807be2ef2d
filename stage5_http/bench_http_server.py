#!/usr/bin/env python3
"""The Python side of bench_http_server: the same keep-alive "hello" server, in asyncio.

    python3 bench_http_server.py --variant streams  --port 0
    python3 bench_http_server.py --variant protocol --port 0

Prints the port it listens on (first line of stdout), then serves until SIGINT or SIGTERM.
Every request (a GET without a body; the bench sends nothing else) gets

    HTTP/1.1 200 OK, Content-Type: text/plain, Content-Length: 13, "Hello, World!"

streams:  asyncio.start_server; a task per connection reads each head with
          readuntil(b"\\r\\n\\r\\n") and answers with write() and drain(): how most asyncio
          servers are written.
protocol: an asyncio.Protocol that splits heads in data_received and answers with one
          transport.write() per read: the fastest way to write it with the standard library
          (aiohttp's server is a protocol too).
Standard library only.
"""
import argparse
import asyncio
import email.utils
import signal
import sys

BODY = b"Hello, World!"


def response_head():
    # The Date field, as a real server sends it (formatted once a second would be faster;
    # this is what a straightforward asyncio server does).
    return (b"HTTP/1.1 200 OK\r\nServer: asyncio\r\nDate: " + email.utils.formatdate(usegmt=True).encode() +
            b"\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n")


async def handle_stream(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            close = b"\r\nconnection: close" in head.lower()
            writer.write(response_head() + BODY)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


class HelloProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            self.buffer = self.buffer[end + 4:]
            out.append(response_head() + BODY)
        if out:
            self.transport.write(b"".join(out))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=["streams", "protocol"], default="streams")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    if args.variant == "streams":
        server = await asyncio.start_server(handle_stream, args.host, args.port, backlog=511)
    else:
        server = await loop.create_server(HelloProtocol, args.host, args.port, backlog=511)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
