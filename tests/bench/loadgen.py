"""A load generator that stays out of the way: raw HTTP/1.1 keep-alive over asyncio streams,
one process of its own, C connections each sending the next request as soon as the last answer
is in (closed loop). Prints one JSON line: answers, statuses, latency percentiles.

python -m tests.bench.loadgen --port P --seconds S --connections C --header 'Name: value' ...
(`{n}` in a header value becomes a message number that grows by one per request; `--body`
sends the same JSON body with every request, as Graph's notifications come).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import socket
import time
from collections import Counter


async def connection(
    host: str,
    port: int,
    path: str,
    headers: list[str],
    body: bytes,
    numbers: itertools.count[int],
    warmup_until: float,
    stop_at: float,
    latencies: list[float],
    outcomes: Counter[str],
    answered: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            number = str(next(numbers))
            lines = "".join(h.replace("{n}", number) + "\r\n" for h in headers)
            writer.write(f"{head}{lines}\r\n".encode() + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in answer.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            reply = await reader.readexactly(length) if length else b""
            done = time.perf_counter()
            answered[0] += 1
            if now >= warmup_until:
                latencies.append(done - now)
                status = answer[9:12].decode()
                outcomes[f"{status} {reply.decode(errors='replace')[:60]}"] += 1
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    answered = [0]  # every answer, the warm-up's too
    numbers = itertools.count(args.first_number)
    start = time.perf_counter()
    warmup_until = start + args.warmup
    stop_at = warmup_until + args.seconds
    await asyncio.gather(
        *(
            connection(
                args.host,
                args.port,
                args.path,
                args.header,
                args.body.encode(),
                numbers,
                warmup_until,
                stop_at,
                latencies,
                outcomes,
                answered,
            )
            for _ in range(args.connections)
        )
    )
    measured = time.perf_counter() - warmup_until
    latencies.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)

    def pct(fraction: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))]

    return {
        "answers": len(latencies),
        "all_answers": answered[0],
        "seconds": measured,
        "per_second": len(latencies) / measured,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": latencies[-1] if latencies else float("nan"),
        "outcomes": dict(outcomes.most_common(6)),
        "next_number": next(numbers),
        # Busy share of one CPU: well under 1.0 means the generator was not the bottleneck.
        "cpu_share": (usage.ru_utime + usage.ru_stime) / (measured + args.warmup),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/webhooks/google")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--first-number", type=int, default=1)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body", default="")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
