#!/usr/bin/env python3
"""Stage 3 benchmark, Python side: what switching from one task to another costs, in ns.

The same two programs as bench_switch.cpp, on CPython's asyncio (median of R runs):
  ping_pong  two tasks hand control back and forth through futures for N round trips: each
             side creates a fresh future for itself, completes the other side's and awaits
             its own. A switch = one task suspends and the other resumes; a round trip = 2
             switches. Reported: ns per switch.
  sleep0     one task running `await asyncio.sleep(0)` N times. Reported: ns per iteration.
Also the same figures in CPU time (time.process_time), which a busy machine inflates less.
Prints `RESULT ...` lines on stdout; progress goes to stderr.
Standard library only; run by build/bin/bench_switch, or on its own.
"""
import argparse
import asyncio
import statistics
import sys
import time


class PingPong:
    def __init__(self):
        self.inbox = [None, None]  # the future each side waits on, once it has made it
        self.switches = 0          # resumptions counted: one per switch


async def player(s, me, rounds):
    loop = asyncio.get_running_loop()
    other = 1 - me
    for _ in range(rounds):
        mine = loop.create_future()
        s.inbox[me] = mine
        theirs, s.inbox[other] = s.inbox[other], None
        if theirs is not None:
            theirs.set_result(None)
        await mine
        s.switches += 1
    # The other side still waits for its last turn.
    theirs, s.inbox[other] = s.inbox[other], None
    if theirs is not None:
        theirs.set_result(None)


async def ping_pong_main(rounds, s):
    cpu0, t0 = time.process_time(), time.perf_counter()
    b = asyncio.create_task(player(s, 1, rounds))  # b runs first and waits for a
    a = asyncio.create_task(player(s, 0, rounds))
    await a
    await b
    return time.perf_counter() - t0, time.process_time() - cpu0


def run_ping_pong(rounds):
    s = PingPong()
    seconds, cpu = asyncio.run(ping_pong_main(rounds, s))
    if s.switches != 2 * rounds:
        sys.exit(f"ping_pong: counted {s.switches} switches, expected {2 * rounds}")
    return seconds * 1e9 / s.switches, cpu * 1e9 / s.switches


async def sleep0_main(n):
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    return time.perf_counter() - t0, time.process_time() - cpu0


def run_sleep0(n):
    seconds, cpu = asyncio.run(sleep0_main(n))
    return seconds * 1e9 / n, cpu * 1e9 / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1_000_000, help="ping-pong round trips (default 1000000)")
    ap.add_argument("--sleeps", type=int, default=1_000_000, help="sleep(0) iterations (default 1000000)")
    ap.add_argument("--runs", type=int, default=1, help="runs; the median is reported (default 1)")
    args = ap.parse_args()
    if args.rounds < 1 or args.sleeps < 1 or args.runs < 1:
        ap.error("--rounds, --sleeps and --runs must be at least 1")

    for name, unit, n, what, run in [("ping_pong", "switch", args.rounds, "round trips", run_ping_pong),
                                     ("sleep0", "iteration", args.sleeps, "sleeps", run_sleep0)]:
        ns, cpu = [], []
        for r in range(1, args.runs + 1):
            print(f"python3 asyncio: {name}, run {r}/{args.runs} ({n} {what})...", end="", file=sys.stderr, flush=True)
            w, c = run(n)
            ns.append(w)
            cpu.append(c)
            print(f" {w:.1f} ns per {unit} (cpu {c:.1f} ns)", file=sys.stderr, flush=True)
        print(f"RESULT name={name} variant=python-asyncio value={statistics.median(ns):.1f} unit=ns_per_{unit}",
              flush=True)
        print(f"RESULT name={name}_cpu variant=python-asyncio value={statistics.median(cpu):.1f} unit=ns_per_{unit}",
              flush=True)


if __name__ == "__main__":
    main()
