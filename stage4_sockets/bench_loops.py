#!/usr/bin/env python3
"""Stage 4 benchmark, Python side: bench_loops' four workloads on asyncio's default loop.

asyncio's default loop on Linux is itself a selector loop (epoll), which polls its selector
on every pass. The workloads, each reported in ns per unit:
  call_soon        N loop.call_soon(cb), then loop.run_forever()       (ns per callback)
  call_soon_chain  each callback schedules the next, N in all           (ns per callback)
  ping_pong        two tasks hand control back and forth through futures (ns per switch)
  sleep0           one task awaiting asyncio.sleep(0) N times           (ns per iteration)
Prints `RESULT ...` lines on stdout; progress goes to stderr.
Standard library only; run by build/bin/bench_loops, or on its own.
"""
import argparse
import asyncio
import statistics
import sys
import time


def run_call_soon(n):
    loop = asyncio.new_event_loop()
    try:
        remaining = n

        def cb():
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                loop.stop()

        t0 = time.perf_counter()
        for _ in range(n):
            loop.call_soon(cb)
        loop.run_forever()
        return (time.perf_counter() - t0) * 1e9 / n
    finally:
        loop.close()


def run_call_soon_chain(n):
    loop = asyncio.new_event_loop()
    try:
        remaining = n

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
        return (time.perf_counter() - t0) * 1e9 / n
    finally:
        loop.close()


async def player(inbox, me, rounds):
    loop = asyncio.get_running_loop()
    other = 1 - me
    for _ in range(rounds):
        mine = loop.create_future()
        inbox[me] = mine
        theirs, inbox[other] = inbox[other], None
        if theirs is not None:
            theirs.set_result(None)
        await mine
    theirs, inbox[other] = inbox[other], None
    if theirs is not None:
        theirs.set_result(None)


async def ping_pong_main(rounds):
    inbox = [None, None]
    t0 = time.perf_counter()
    b = asyncio.create_task(player(inbox, 1, rounds))
    a = asyncio.create_task(player(inbox, 0, rounds))
    await a
    await b
    return time.perf_counter() - t0


def run_ping_pong(n):
    return asyncio.run(ping_pong_main(n)) * 1e9 / (2 * n)


async def sleep0_main(n):
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    return time.perf_counter() - t0


def run_sleep0(n):
    return asyncio.run(sleep0_main(n)) * 1e9 / n


WORKLOADS = [("call_soon", "callback", run_call_soon), ("call_soon_chain", "callback", run_call_soon_chain),
             ("ping_pong", "switch", run_ping_pong), ("sleep0", "iteration", run_sleep0)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200_000, help="N for each workload (default 200000)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each; the median is reported (default 1)")
    args = ap.parse_args()
    if args.count < 1 or args.runs < 1:
        ap.error("--count and --runs must be at least 1")
    for name, unit, run in WORKLOADS:
        ns = []
        for r in range(1, args.runs + 1):
            print(f"python3 asyncio: {name}, run {r}/{args.runs} (N = {args.count})...", end="", file=sys.stderr,
                  flush=True)
            ns.append(run(args.count))
            print(f" {ns[-1]:.1f} ns per {unit}", file=sys.stderr, flush=True)
        print(f"RESULT name={name} variant=python-asyncio value={statistics.median(ns):.1f} unit=ns_per_{unit}",
              flush=True)


if __name__ == "__main__":
    main()
