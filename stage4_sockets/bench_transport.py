#!/usr/bin/env python3
"""Stage 4 benchmark, Python side: bench_transport's echo round trips on asyncio.

One loopback connection, client and server on one asyncio loop, a SIZE-byte message sent
only once the previous one has come back. Reported in round trips per second:
  protocol_echo  an Echo protocol; the client's protocol sends from data_received
  streams_echo   start_server and open_connection: write, drain, readexactly
  sock_echo      loop.sock_sendall and a loop of loop.sock_recv_into
Prints `RESULT ...` lines on stdout; progress goes to stderr.
Standard library only; run by build/bin/bench_transport, or on its own.
"""
import argparse
import asyncio
import socket
import statistics
import sys
import time


class EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class EchoClient(asyncio.Protocol):
    def __init__(self, message, round_trips, done):
        self.message = message
        self.remaining = round_trips
        self.got = 0
        self.done = done

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.got += len(data)
        while self.got >= len(self.message):
            self.got -= len(self.message)
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set_result(None)
                return
            self.transport.write(self.message)


async def protocol_echo(n, message):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    done = loop.create_future()
    transport, client = await loop.create_connection(lambda: EchoClient(message, n, done), "127.0.0.1", port)
    t0 = time.perf_counter()
    transport.write(message)
    await done
    took = time.perf_counter() - t0
    transport.close()
    server.close()
    await server.wait_closed()
    return n / took


async def streams_echo_handler(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def streams_echo(n, message):
    server = await asyncio.start_server(streams_echo_handler, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    t0 = time.perf_counter()
    for _ in range(n):
        writer.write(message)
        await writer.drain()
        await reader.readexactly(len(message))
    took = time.perf_counter() - t0
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return n / took


async def sock_echo_server(listener):
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(listener)
    buf = bytearray(65536)
    with conn:
        while True:
            got = await loop.sock_recv_into(conn, buf)
            if not got:
                break
            await loop.sock_sendall(conn, memoryview(buf)[:got])


async def sock_recv_exactly(loop, sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if not k:
            raise EOFError("short echo")
        got += k
    return bytes(buf)


async def sock_echo(n, message):
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    server = asyncio.create_task(sock_echo_server(listener))
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setblocking(False)
    await loop.sock_connect(client, listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    for _ in range(n):
        await loop.sock_sendall(client, message)
        await sock_recv_exactly(loop, client, len(message))
    took = time.perf_counter() - t0
    client.shutdown(socket.SHUT_WR)
    await server
    client.close()
    listener.close()
    return n / took


WORKLOADS = [("protocol_echo", protocol_echo), ("streams_echo", streams_echo), ("sock_echo", sock_echo)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000, help="round trips per run (default 10000)")
    ap.add_argument("--size", type=int, default=64, help="bytes per message (default 64)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each; the median is reported (default 1)")
    ap.add_argument("--workload", default="all", choices=["all"] + [name for name, _ in WORKLOADS],
                    help="only this one (default: all)")
    args = ap.parse_args()
    if args.count < 1 or args.runs < 1 or not 1 <= args.size <= 1 << 20:
        ap.error("--count and --runs must be at least 1, --size from 1 to 1048576")
    message = b"x" * args.size
    for name, run in WORKLOADS:
        if args.workload not in ("all", name):
            continue
        rates = []
        for r in range(1, args.runs + 1):
            print(f"python3 asyncio: {name}, run {r}/{args.runs} (N = {args.count})...", end="", file=sys.stderr,
                  flush=True)
            rates.append(asyncio.run(run(args.count, message)))
            print(f" {rates[-1]:.0f} round trips/s", file=sys.stderr, flush=True)
        print(f"RESULT name={name}_{args.size}B variant=python-asyncio value={statistics.median(rates):.0f} "
              f"unit=round_trips_per_s", flush=True)


if __name__ == "__main__":
    main()
