#!/usr/bin/env python3
"""Stage 3 benchmark, Python side: gather over N tasks that each sleep(0) once.

The same program as bench_gather_100k.cpp, on CPython's asyncio: make N coroutines `one()`
(each does `await asyncio.sleep(0)` once), then `await asyncio.gather(*coros)`. Timed from
making the first coroutine to gather's return; the median of R runs, in ms, and the same in
CPU time (time.process_time), as `RESULT ...` lines on stdout. Progress goes to stderr.
Standard library only; run by build/bin/bench_gather_100k, or on its own.
"""
import argparse
import asyncio
import statistics
import sys
import time


def count_label(n):
    # Same names as the C++ side: 100000 -> "100k", 1000000 -> "1m".
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


async def one():
    await asyncio.sleep(0)


async def gather_main(n):
    cpu0, t0 = time.process_time(), time.perf_counter()
    coros = [one() for _ in range(n)]
    results = await asyncio.gather(*coros)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if len(results) != n:
        sys.exit(f"gather returned {len(results)} results, expected {n}")
    return seconds, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000, help="tasks (default 100000)")
    ap.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    args = ap.parse_args()
    if args.count < 1 or args.runs < 1:
        ap.error("--count and --runs must be at least 1")

    ms, cpu_ms = [], []
    for r in range(1, args.runs + 1):
        print(f"python3 asyncio: run {r}/{args.runs} (gather over {args.count} tasks)...",
              end="", file=sys.stderr, flush=True)
        seconds, cpu = asyncio.run(gather_main(args.count))
        ms.append(seconds * 1e3)
        cpu_ms.append(cpu * 1e3)
        print(f" {ms[-1]:.1f} ms (cpu {cpu_ms[-1]:.1f} ms)", file=sys.stderr, flush=True)

    name = "gather_" + count_label(args.count)
    print(f"RESULT name={name} variant=python-asyncio value={statistics.median(ms):.3f} unit=ms")
    print(f"RESULT name={name}_cpu variant=python-asyncio value={statistics.median(cpu_ms):.3f} unit=ms")


if __name__ == "__main__":
    main()
