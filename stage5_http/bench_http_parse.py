#!/usr/bin/env python3
"""Stage 5 benchmark, Python side: HTTP/1.1 parsing speed, in messages per second.

The same messages as bench_http_parse.cpp, each workload the median of R runs, parsed by:
  python-stdlib   the standard library's own parsers: http.server's
                  BaseHTTPRequestHandler.parse_request for requests, http.client's
                  HTTPResponse (begin + read) for responses.
  python-aiohttp  aiohttp's HttpRequestParser / HttpResponseParser (llhttp, in C), when
                  aiohttp is importable (Debian: python3-aiohttp); skipped otherwise.
Prints `RESULT ...` lines on stdout; progress goes to stderr.
Run by build/bin/bench_http_parse, or on its own.
"""
import argparse
import asyncio
import http.client
import http.server
import io
import statistics
import sys
import time

BROWSER = (
    b"GET /articles/2024/parsing-http.html?ref=home&lang=en HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-GB,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: http://www.example.com/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Priority: u=0, i\r\n"
    b"\r\n"
)
MINIMAL = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"Date: Mon, 02 Jun 2025 10:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 13\r\n"
    b"Last-Modified: Mon, 02 Jun 2025 09:00:00 GMT\r\n"
    b"Connection: keep-alive\r\n"
    b"Accept-Ranges: bytes\r\n"
    b"\r\n"
    b"Hello, World!"
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    b"7\r\nHello, \r\n6\r\nWorld!\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n3;ext=1\r\n...\r\n0\r\n"
    b"X-Checksum: 42\r\n"
    b"\r\n"
)

# (name, message, messages per feed, pieces per feed, is a request)
WORKLOADS = [
    ("request_browser", BROWSER, 1, 1, True),
    ("request_minimal", MINIMAL, 1, 1, True),
    ("request_pieces", BROWSER, 1, 8, True),
    ("request_pipelined", MINIMAL, 16, 1, True),
    ("response_small", RESPONSE, 1, 1, False),
    ("response_chunked", CHUNKED, 1, 1, False),
]


# ---- the standard library -------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, rfile):  # no socket: just what parse_request needs
        self.rfile = rfile
        self.wfile = io.BytesIO()
        self.client_address = ("127.0.0.1", 0)
        self.request_version = "HTTP/1.1"


class _FakeSocket:
    def __init__(self, data):
        self._file = io.BytesIO(data)

    def makefile(self, mode):
        return self._file


def stdlib(message, per_feed, pieces, is_request, count):
    # The stdlib parsers read from a file, so pieces and pipelining make no difference to
    # them: each message is parsed from a file holding it.
    t0 = time.perf_counter()
    if is_request:
        for _ in range(count):
            h = _Handler(io.BytesIO(message))
            h.raw_requestline = h.rfile.readline(65537)
            if not h.parse_request():
                raise RuntimeError("stdlib rejected the request")
            h.headers.get("host")
    else:
        for _ in range(count):
            r = http.client.HTTPResponse(_FakeSocket(message))
            r.begin()
            r.read()
    return count / (time.perf_counter() - t0)


# ---- aiohttp --------------------------------------------------------------------------

def aiohttp_parse(message, per_feed, pieces, is_request, count):
    from aiohttp import http_parser

    class Protocol:  # the little of a protocol the parsers touch
        transport = None

        def __getattr__(self, name):
            return lambda *a, **k: None

    loop = asyncio.new_event_loop()
    try:
        cls = http_parser.HttpRequestParser if is_request else http_parser.HttpResponseParser
        parser = cls(Protocol(), loop, 2 ** 16, max_line_size=8190, max_field_size=8190)
        batch = message * per_feed
        parts = [batch[len(batch) * i // pieces:len(batch) * (i + 1) // pieces] for i in range(pieces)]
        parsed = 0
        t0 = time.perf_counter()
        while parsed < count:
            for part in parts:
                messages, _, _ = parser.feed_data(part)
                parsed += len(messages)
        return parsed / (time.perf_counter() - t0)
    finally:
        loop.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    try:
        import aiohttp  # noqa: F401
        have_aiohttp = True
    except ImportError:
        have_aiohttp = False
        print("python: aiohttp is not installed (python3-aiohttp): its parser is skipped", file=sys.stderr)
    for name, message, per_feed, pieces, is_request in WORKLOADS:
        variants = [("python-stdlib", stdlib)] + ([("python-aiohttp", aiohttp_parse)] if have_aiohttp else [])
        for variant, fn in variants:
            rates = []
            for r in range(args.runs):
                print(f"{variant}: {name}, run {r + 1}/{args.runs} ({args.count} messages)...", end="",
                      file=sys.stderr, flush=True)
                rates.append(fn(message, per_feed, pieces, is_request, args.count))
                print(f" {rates[-1] / 1e6:.3f} M/s", file=sys.stderr, flush=True)
            print(f"RESULT name={name} variant={variant} value={statistics.median(rates):.0f} unit=messages_per_s",
                  flush=True)


if __name__ == "__main__":
    main()
