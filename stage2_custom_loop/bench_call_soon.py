#!/usr/bin/env python3
"""Stage 2 benchmark, Python side: call_soon throughput on asyncio, in callbacks per second.

The identical workloads to bench_call_soon.cpp, each the median of R runs:
  call_soon        N loop.call_soon(cb) in a row, then loop.run_forever(); cb counts down and
                   the last one calls loop.stop(). Timed from the first call_soon to the
                   return of run_forever.
  call_soon_chain  each callback schedules the next, N in all (one loop pass per callback).
Prints `RESULT ...` lines on stdout; progress goes to stderr.
Standard library only; run by build/bin/bench_call_soon, or on its own.
"""
import argparse
import asyncio
import statistics
import sys
import time


def run_call_soon(count):
    loop = asyncio.new_event_loop()
    try:
        remaining = count

        def cb():
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                loop.stop()

        t0 = time.perf_counter()
        for _ in range(count):
            loop.call_soon(cb)
        loop.run_forever()
        return count / (time.perf_counter() - t0)
    finally:
        loop.close()


def run_call_soon_chain(count):
    loop = asyncio.new_event_loop()
    try:
        remaining = count

        def cb():
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                loop.stop()
            else:
                loop.call_soon(cb)

        t0 = time.perf_counter()
        loop.call_soon(cb)
        loop.run_forever()
        return count / (time.perf_counter() - t0)
    finally:
        loop.close()


WORKLOADS = [("call_soon", run_call_soon), ("call_soon_chain", run_call_soon_chain)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="callbacks per run (default 1000000)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each workload; the median is reported (default 5)")
    args = ap.parse_args()
    if args.count < 1 or args.runs < 1:
        ap.error("--count and --runs must be at least 1")

    for name, run in WORKLOADS:
        rates = []
        for r in range(1, args.runs + 1):
            print(f"python3 asyncio: {name}, run {r}/{args.runs} ({args.count} callbacks)...",
                  end="", file=sys.stderr, flush=True)
            rates.append(run(args.count))
            print(f" {rates[-1] / 1e6:.2f} M callbacks/s", file=sys.stderr, flush=True)
        print(f"RESULT name={name} variant=python-asyncio value={statistics.median(rates):.0f} unit=callbacks_per_s",
              flush=True)


if __name__ == "__main__":
    main()
