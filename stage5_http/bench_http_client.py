#!/usr/bin/env python3
"""The Python side of bench_http_client: N concurrent GET /delay/S, from a cold client.

    python3 bench_http_client.py --variant threads --client http://127.0.0.1:8080/ --count 100
    python3 bench_http_client.py --variant aiohttp --client http://127.0.0.1:8080/ --count 500

One warm-up request (GET /get), then N concurrent GETs of <url>delay/<S>, each body read to
its end, timed from the first request made to the last body read. Prints, for the bench:

    RESULT name=run variant=python-<variant> value=<seconds> unit=s
    RESULT name=ok variant=python-<variant> value=<requests answered 200 with a body> unit=requests

threads:  urllib.request.urlopen in a ThreadPoolExecutor of N threads (one per request, so
          that all N wait at once; the default pool, min(32, cores + 4) threads, would run
          them in waves). Blocking sockets, a new connection per request.
aiohttp:  one aiohttp.ClientSession with TCPConnector(limit=0), asyncio.gather of N requests
          (limit=0 as the C++ side: the default limit of 100 would run 500 in five waves).
          Needs aiohttp (apt-get install python3-aiohttp); the rest is the standard library.
"""
import argparse
import asyncio
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def result(name, variant, value, unit):
    print(f"RESULT name={name} variant=python-{variant} value={value:.6f} unit={unit}", flush=True)


def blocking_get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        return response.status == 200 and len(body) > 0


def run_threads(base, url, n):
    blocking_get(base + "get")  # the warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        ok = sum(pool.map(blocking_get, [url] * n))
    return time.perf_counter() - start, ok


async def run_aiohttp(base, url, n):
    import aiohttp

    async def get(session, url):
        async with session.get(url) as response:
            body = await response.read()
            return response.status == 200 and len(body) > 0

    async with aiohttp.ClientSession() as warmup:
        await get(warmup, base + "get")
    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        ok = sum(await asyncio.gather(*(get(session, url) for _ in range(n))))
        elapsed = time.perf_counter() - start
    return elapsed, ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=["threads", "aiohttp"], required=True)
    parser.add_argument("--client", required=True, metavar="URL", help="the server's base URL, ending in /")
    parser.add_argument("--count", type=int, default=100, help="concurrent requests")
    parser.add_argument("--delay", default="0.1", help="the server's delay per request, seconds")
    args = parser.parse_args()
    url = f"{args.client}delay/{args.delay}"
    if args.variant == "threads":
        elapsed, ok = run_threads(args.client, url, args.count)
    else:
        elapsed, ok = asyncio.run(run_aiohttp(args.client, url, args.count))
    result("run", args.variant, elapsed, "s")
    result("ok", args.variant, ok, "requests")


if __name__ == "__main__":
    main()
    sys.exit(0)
