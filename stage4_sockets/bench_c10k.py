#!/usr/bin/env python3
"""Stage 4 benchmark, Python side: bench_c10k's two asyncio echo servers.

  --serve protocol  loop.create_server with an Echo protocol
  --serve streams   asyncio.start_server; a task per connection: readline, write, drain

Either raises its open-file limit to hold --connections, listens on 127.0.0.1 (an
ephemeral port), prints "PORT <n>", and serves until it is terminated. On SIGUSR1 it prints
"OPEN <connections> RSS <KiB>" (its resident memory, from /proc/self/statm), which is how
build/bin/bench_c10k measures the memory each idle connection costs. Standard library only.
"""
import argparse
import asyncio
import os
import resource
import signal
import sys

SPARE_FDS = 64
open_connections = 0


def resident_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE") // 1024


def report():
    print(f"OPEN {open_connections} RSS {resident_kib()}", flush=True)


def hold_fds(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = n + SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted) if hard != resource.RLIM_INFINITY else hard))
        except (ValueError, OSError) as e:
            print(f"python server: cannot raise the open-file limit to {wanted}: {e}", file=sys.stderr)


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        global open_connections
        self.transport = transport
        open_connections += 1

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        global open_connections
        open_connections -= 1


async def echo_lines(reader, writer):
    global open_connections
    open_connections += 1
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        open_connections -= 1
        writer.close()


async def serve(kind):
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, report)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    if kind == "protocol":
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, backlog=4096)
    else:
        server = await asyncio.start_server(echo_lines, "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=["protocol", "streams"], required=True, help="which server to run")
    ap.add_argument("--connections", type=int, default=10_000, help="connections to make room for")
    args = ap.parse_args()
    hold_fds(args.connections)
    try:
        asyncio.run(serve(args.serve))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
