#!/usr/bin/env python3
"""Stage 4 benchmark, Python side: bench_echo's two asyncio echo servers.

  --serve protocol  loop.create_server with an Echo protocol (data_received -> write)
  --serve streams   asyncio.start_server; each connection: readline, write, drain

Either listens on 127.0.0.1 (an ephemeral port), prints "PORT <n>" on stdout, and serves
until it is terminated. build/bin/bench_echo starts it, pinned to one core, and loads it
from another process exactly as it loads our two servers; it measures, this only serves.
Standard library only.
"""
import argparse
import asyncio
import signal
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_lines(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass  # the load generator aborts its connections when it is done
    writer.close()


async def serve(kind):
    loop = asyncio.get_running_loop()
    if kind == "protocol":
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, backlog=1024)
    else:
        server = await asyncio.start_server(echo_lines, "127.0.0.1", 0, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=["protocol", "streams"], required=True, help="which server to run")
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.serve))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
