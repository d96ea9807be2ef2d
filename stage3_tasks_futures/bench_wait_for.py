#!/usr/bin/env python3
"""Stage 3 benchmark, Python side: what a wait_for (a timeout scope around one await) costs.

The same programs as bench_wait_for.cpp, on CPython's asyncio (median of R runs), in ns per call:
  ready         N x `await asyncio.wait_for(ready(), 10.0)`, ready() returning at once
  sleep0        N x `await asyncio.wait_for(sleep0(), 10.0)`, sleep0() suspending once
  plain_sleep0  N x `await sleep0()`, the same without wait_for
  timeout_ready N x `async with asyncio.timeout(10.0): await ready()`: 3.12's wait_for
                written out (before 3.12, wait_for makes a task: compare this line instead)
No timeout ever passes. Since Python 3.12, wait_for is `async with timeouts.timeout(t)` around
the await. Also the same figures in CPU time (time.process_time).
Prints `RESULT ...` lines on stdout; progress goes to stderr.
Standard library only; run by build/bin/bench_wait_for, or on its own.
"""
import argparse
import asyncio
import statistics
import sys
import time


async def ready():
    return 1


async def sleep0():
    await asyncio.sleep(0)
    return 1


async def calls(program, n):
    total = 0
    for _ in range(n):
        if program == "ready":
            total += await asyncio.wait_for(ready(), 10.0)
        elif program == "sleep0":
            total += await asyncio.wait_for(sleep0(), 10.0)
        elif program == "timeout_ready":
            async with asyncio.timeout(10.0):
                total += await ready()
        else:
            total += await sleep0()
    return total


def run(program, n):
    cpu0, t0 = time.process_time(), time.perf_counter()
    total = asyncio.run(calls(program, n))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if total != n:
        sys.exit(f"wait_for: {n} calls returned {total}, expected {n}")
    return seconds * 1e9 / n, cpu * 1e9 / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100_000, help="wait_for calls per program (default 100000)")
    ap.add_argument("--runs", type=int, default=3, help="runs; the median is reported (default 3)")
    args = ap.parse_args()
    if args.calls < 1 or args.runs < 1:
        ap.error("--calls and --runs must be at least 1")
    if sys.version_info < (3, 12):
        print(f"python3 asyncio: note: Python {sys.version.split()[0]}'s wait_for is the pre-3.12 one "
              "(it makes a task); timeout_ready is the 3.12 shape", file=sys.stderr, flush=True)

    for program in ("ready", "sleep0", "plain_sleep0", "timeout_ready"):
        ns, cpu = [], []
        for r in range(1, args.runs + 1):
            print(f"python3 asyncio: {program}, run {r}/{args.runs} ({args.calls} calls)...", end="",
                  file=sys.stderr, flush=True)
            w, c = run(program, args.calls)
            ns.append(w)
            cpu.append(c)
            print(f" {w:.1f} ns per call (cpu {c:.1f} ns)", file=sys.stderr, flush=True)
        print(f"RESULT name={program} variant=python-asyncio value={statistics.median(ns):.1f} unit=ns_per_call",
              flush=True)
        print(f"RESULT name={program}_cpu variant=python-asyncio value={statistics.median(cpu):.1f} unit=ns_per_call",
              flush=True)


if __name__ == "__main__":
    main()
