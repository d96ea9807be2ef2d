#!/usr/bin/env python3
"""Stage 2 benchmark, Python side: N timers of S seconds, started together, on asyncio.

The identical workload to bench_timers.cpp: loop.call_later(S, cb) N times in a row, then
loop.run_forever(); every callback counts down, and the last one notes loop.time() and
calls loop.stop(). Reports, as the median of R runs, how long after the S-second mark
(S s after the first timer was scheduled) the last timer fired, and how long scheduling
took, both in ms, as `RESULT ...` lines on stdout. Progress goes to stderr.
Standard library only; run by build/bin/bench_timers, or on its own.
"""
import argparse
import asyncio
import statistics
import sys


def count_label(n):
    # Same names as bench_timers.cpp: 100000 -> "100k", 1000000 -> "1m".
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def one_run(count, delay):
    loop = asyncio.new_event_loop()
    try:
        remaining = count
        last_fired = 0.0

        def cb():
            nonlocal remaining, last_fired
            remaining -= 1
            if remaining == 0:
                last_fired = loop.time()
                loop.stop()

        t0 = loop.time()
        for _ in range(count):
            loop.call_later(delay, cb)
        scheduled = loop.time()
        loop.run_forever()
        return (last_fired - (t0 + delay)) * 1e3, (scheduled - t0) * 1e3
    finally:
        loop.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000, help="number of timers (default 100000)")
    ap.add_argument("--delay", type=float, default=1.0, help="each timer's delay in seconds (default 1.0)")
    ap.add_argument("--runs", type=int, default=5, help="runs; the median is reported (default 5)")
    args = ap.parse_args()
    if args.count < 1 or args.runs < 1 or args.delay < 0:
        ap.error("--count and --runs must be at least 1, --delay not negative")

    late, sched = [], []
    for r in range(1, args.runs + 1):
        print(f"python3 asyncio: run {r}/{args.runs} ({args.count} timers of {args.delay:.3g} s)...",
              end="", file=sys.stderr, flush=True)
        late_ms, sched_ms = one_run(args.count, args.delay)
        print(f" last fired {late_ms:.2f} ms late, scheduling took {sched_ms:.2f} ms", file=sys.stderr, flush=True)
        late.append(late_ms)
        sched.append(sched_ms)

    name = "timers_" + count_label(args.count)
    print(f"RESULT name={name} variant=python-asyncio value={statistics.median(late):.3f} unit=ms_late")
    print(f"RESULT name={name}_schedule variant=python-asyncio value={statistics.median(sched):.3f} unit=ms")


if __name__ == "__main__":
    main()
