#!/usr/bin/env python3
"""Stage 4 benchmark, Python side: bench_selectors' select() calls with Python's selectors.

N sockets registered for reading (AF_UNIX datagram sockets bound in Linux's abstract
namespace, and one more that sends to them: N + 1 fds); each round makes ACTIVE% of them
readable (spread over the range, a different set each round), times one select(0) call,
and reads the bytes back. On selectors.SelectSelector (only while every fd is below
FD_SETSIZE), PollSelector and EpollSelector. Reported in ns per select() call:
  RESULT name=select_call_<N>conns_<A>active variant=python-<select|poll|epoll> ...
Prints `RESULT ...` lines on stdout; progress goes to stderr.
Standard library only; run by build/bin/bench_selectors, or on its own.
"""
import argparse
import os
import resource
import selectors
import socket
import statistics
import sys
import time

SPARE_FDS = 64
KINDS = [("select", getattr(selectors, "SelectSelector", None)),
         ("poll", getattr(selectors, "PollSelector", None)),
         ("epoll", getattr(selectors, "EpollSelector", None))]


def hold_fds(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    try:
        new_hard = hard if hard == resource.RLIM_INFINITY or hard >= wanted else wanted
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, new_hard))
        return wanted
    except (ValueError, OSError):
        return soft


def active_set(n, active, rnd):
    stride = max(1, n // active)
    return [(k * stride + rnd % stride) % n for k in range(active)]


def time_select(kind_cls, reading, sender, addresses, active, rounds):
    if kind_cls is getattr(selectors, "SelectSelector", None) and max(s.fileno() for s in reading) >= 1024:
        return None  # select(2) cannot watch an fd at or above FD_SETSIZE
    sel = kind_cls()
    try:
        for s in reading:
            sel.register(s, selectors.EVENT_READ)
        seconds = 0.0
        for r in range(rounds):
            which = active_set(len(reading), active, r)
            for i in which:
                sender.sendto(b"\x01", addresses[i])
            t0 = time.perf_counter()
            ready = sel.select(0)
            seconds += time.perf_counter() - t0
            if len(ready) != len(which):
                raise RuntimeError(f"{kind_cls.__name__} reported {len(ready)} ready fds, not {len(which)}")
            for i in which:
                reading[i].recv(1)
        return seconds * 1e9 / rounds
    finally:
        sel.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, action="append", help="N (repeat for several)")
    ap.add_argument("--active", type=float, default=1.0, help="percent readable per round (default 1)")
    ap.add_argument("--work", type=int, default=2_000_000, help="rounds x N per figure (default 2000000)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each; the median is reported (default 1)")
    args = ap.parse_args()
    sizes = sorted(set(args.connections or [100, 500, 1000, 10_000]))
    fit = hold_fds(sizes[-1] + SPARE_FDS) - SPARE_FDS
    sizes = sorted(set(min(n, fit) for n in sizes))
    for n in sizes:
        active = max(1, int(n * args.active / 100 + 0.5))
        rounds = max(20, args.work // n)
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        reading, addresses = [], []
        for i in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            address = f"\0aio-bench-selectors-py-{os.getpid()}-{i}"
            s.bind(address)
            s.setblocking(False)
            reading.append(s)
            addresses.append(address)
        try:
            for kind, cls in KINDS:
                if cls is None:
                    continue
                costs = []
                for r in range(args.runs):
                    print(f"python3 selectors: {n} connections, {active} active, {kind}...", end="", file=sys.stderr,
                          flush=True)
                    c = time_select(cls, reading, sender, addresses, active, rounds)
                    print(" n/a (FD_SETSIZE)" if c is None else f" {c:.0f} ns per select()", file=sys.stderr,
                          flush=True)
                    if c is not None:
                        costs.append(c)
                if costs:
                    print(f"RESULT name=select_call_{n}conns_{active}active variant=python-{kind} "
                          f"value={statistics.median(costs):.0f} unit=ns_per_call", flush=True)
        finally:
            for s in reading + [sender]:
                s.close()


if __name__ == "__main__":
    main()
