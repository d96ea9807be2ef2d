#!/usr/bin/env python3
"""The Python side of bench_threads_vs_asyncio: the same GET requests, standard library only.

    python3 bench_threads_vs_asyncio.py --url http://127.0.0.1:PORT/delay/0.1

python-threads: urllib.request.urlopen on a ThreadPoolExecutor of `--workers` threads (the
                articles' requests.get on a ThreadPoolExecutor; requests is not in the
                standard library, urllib is what it is built on).
python-asyncio: asyncio streams, a connection per request (HTTP/1.1, Connection: close),
                at most `--limit` at once (a Semaphore, as aiohttp's pool limit), and gather.
Prints one RESULT line per figure: seconds, the median of the runs.
"""
import argparse
import asyncio
import concurrent.futures
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request

SIZES = [1, 10, 50, 100, 500]


def get_blocking(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
        return r.status


def threads(url, n, workers):
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        statuses = list(pool.map(get_blocking, [url] * n))
    assert all(s == 200 for s in statuses), statuses
    return time.perf_counter() - start


async def get_async(host, port, target, limit):
    async with limit:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()  # until the server closes: the whole answer
        writer.close()
        await writer.wait_closed()
        return int(data.split(b" ", 2)[1])


async def gather(url, n, limit):
    u = urllib.parse.urlsplit(url)
    sem = asyncio.Semaphore(limit if limit > 0 else n)
    start = time.perf_counter()
    statuses = await asyncio.gather(*(get_async(u.hostname, u.port, u.path, sem) for _ in range(n)))
    assert all(s == 200 for s in statuses), statuses
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=500)
    parser.add_argument("--workers", type=int, default=min(32, (os.cpu_count() or 1) + 4))
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    for n in SIZES:
        if n > args.max_requests:
            continue
        t, a = [], []
        for _ in range(args.runs):
            t.append(threads(args.url, n, args.workers))
            a.append(asyncio.run(gather(args.url, n, args.limit)))
        print(f"  python, {n} requests: threads {statistics.median(t):.3f} s, asyncio {statistics.median(a):.3f} s",
              file=sys.stderr, flush=True)
        print(f"RESULT name=get_{n} variant=python-threads value={statistics.median(t):.3f} unit=s", flush=True)
        print(f"RESULT name=get_{n} variant=python-asyncio value={statistics.median(a):.3f} unit=s", flush=True)


if __name__ == "__main__":
    main()
