#!/usr/bin/env python3
"""Stage 3 benchmark, Python side: a million asyncio tasks of an empty coroutine.

The identical workload to bench_tasks_1m.cpp's `ours`: inside asyncio.run(main()), main
creates N tasks of `async def empty(): pass` with asyncio.create_task, keeps them in a list,
then awaits each one in turn (`for t in tasks: await t`). Reports the creation time, the total
time (create + await all), the CPU time of that, the whole asyncio.run(), and the growth of
resident memory (peak VmHWM, or VmRSS after creating if higher, minus VmRSS before), each the
median of R runs, as `RESULT ...` lines on stdout. Every run is a fresh python3 process (this
script runs itself with --child), so no run inherits another's heap. Progress goes to stderr.
Standard library only; run by build/bin/bench_tasks_1m, or on its own.
"""
import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import time


def count_label(n):
    # Same names as the C++ side: 100000 -> "100k", 1000000 -> "1m".
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def status_kb(field):
    """A field of /proc/self/status in kB (VmRSS, VmHWM); None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kb():
    kb = status_kb("VmRSS")
    return kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_kb():
    kb = status_kb("VmHWM")
    return kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def empty():
    pass


async def main(n, figures):
    figures["rss_before_kb"] = rss_kb()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(empty()) for _ in range(n)]
    figures["create_s"] = time.perf_counter() - t0
    figures["rss_created_kb"] = rss_kb()
    for t in tasks:
        await t
    figures["total_s"] = time.perf_counter() - t0
    figures["cpu_s"] = time.process_time() - cpu0


def child(n):
    figures = {}
    t0 = time.perf_counter()
    asyncio.run(main(n, figures))
    figures["run_s"] = time.perf_counter() - t0
    figures["hwm_kb"] = peak_kb()
    print("MEASURED " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def measure(n):
    out = subprocess.run([sys.executable, __file__, "--child", "--count", str(n)],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("MEASURED "):
            return {k: float(v) for k, v in (f.split("=", 1) for f in line.split()[1:])}
    raise RuntimeError("the child printed no figures")


def main_program():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="tasks (default 1000000)")
    ap.add_argument("--runs", type=int, default=1, help="runs, each ~10 s; the median is reported (default 1)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.count < 1 or args.runs < 1:
        ap.error("--count and --runs must be at least 1")
    if args.child:
        child(args.count)
        return

    create, total, cpu, run, memory = [], [], [], [], []
    for r in range(1, args.runs + 1):
        print(f"python3 asyncio: run {r}/{args.runs} ({args.count} tasks, fresh process)...",
              end="", file=sys.stderr, flush=True)
        m = measure(args.count)
        create.append(m["create_s"] * 1e3)
        total.append(m["total_s"] * 1e3)
        cpu.append(m["cpu_s"] * 1e3)
        run.append(m["run_s"] * 1e3)
        memory.append((max(m["hwm_kb"], m["rss_created_kb"]) - m["rss_before_kb"]) / 1024)
        print(f" created in {create[-1]:.1f} ms, total {total[-1]:.1f} ms (cpu {cpu[-1]:.1f} ms, asyncio.run()"
              f" {run[-1]:.1f} ms), memory +{memory[-1]:.1f} MiB", file=sys.stderr, flush=True)

    name = "tasks_" + count_label(args.count)
    print(f"RESULT name={name}_create variant=python-asyncio value={statistics.median(create):.3f} unit=ms")
    print(f"RESULT name={name} variant=python-asyncio value={statistics.median(total):.3f} unit=ms")
    print(f"RESULT name={name}_cpu variant=python-asyncio value={statistics.median(cpu):.3f} unit=ms")
    print(f"RESULT name={name}_run variant=python-asyncio value={statistics.median(run):.3f} unit=ms")
    print(f"RESULT name={name}_memory variant=python-asyncio value={statistics.median(memory):.3f} unit=MiB")


if __name__ == "__main__":
    main_program()
