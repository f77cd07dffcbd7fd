"""B1 — intake: signed webhook deliveries over HTTP to a running `recouvrement serve`, at
concurrency 1, 8 and 32, on SQLite and on PostgreSQL: acknowledgements per second, p50/p99
latency, and every distinct delivery stored exactly once (rows of inbox_events).

What is measured is intake alone: the service's Redmine is a local socket that accepts
connections and never answers, so the worker, woken by the first delivery, waits on it for
the whole run and takes no CPU (later deliveries still wake it, as in production when it is
busy). The load generator — asyncio, one kept-alive connection per concurrent sender, the
requests written out beforehand — runs on the same 2 cores, as light as it can be so that
the service gets them; warm-up deliveries before each level are stored but not measured.

    python -m benchmarks.b1_intake
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from time import perf_counter

from sqlalchemy import create_engine, func, select

from app.inbox.models import InboxEvent
from benchmarks.common import DATABASES, cpu_seconds, percentile, print_table, serve, service_env, write_results
from tests.e2e.redmine_admin import sign

NAME = "b1_intake"
SECRET = "bench-webhook-secret"
REQUESTS = {1: 1_000, 8: 3_000, 32: 6_000}  # deliveries measured per concurrency level
WARM_UP = 200  # deliveries before each level, at its concurrency, not measured
TARGET_ACKS = 500.0  # per second, at concurrency 32
TARGET_P99_MS = 50.0


@contextmanager
def silent_redmine() -> Iterator[str]:
    """A Redmine URL on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def deliveries(journals: Iterator[int], n: int) -> list[tuple[bytes, dict]]:
    """``n`` distinct signed deliveries, as Redmine ≥ 7 sends for an issue's update."""
    signed = []
    for _ in range(n):
        journal = next(journals)
        body = json.dumps({"type": "issue.updated",
                           "data": {"issue": {"id": 1 + journal % 1000}, "journal": {"id": journal}}}).encode()
        signed.append((body, sign(body, SECRET)))
    return signed


def deliver(url: str, signed: list[tuple[bytes, dict]], concurrency: int, server_pid: int) -> dict:
    """Post every delivery from ``concurrency`` senders, each with its own kept-alive
    connection; with the CPU time the service used per delivery."""
    host, port = url.removeprefix("http://").split(":")
    pending = iter([_request(host, body, headers) for body, headers in signed])
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for request in pending:
            started = perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(perf_counter() - started)
            statuses[status] += 1
        writer.close()

    async def all_senders() -> None:
        await asyncio.gather(*(sender() for _ in range(concurrency)))

    started, cpu = perf_counter(), cpu_seconds(server_pid)
    asyncio.run(all_senders())
    seconds, cpu = perf_counter() - started, cpu_seconds(server_pid) - cpu
    return {"concurrency": concurrency, "requests": len(signed), "seconds": round(seconds, 3),
            "acks_per_second": round(statuses[202] / seconds, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 2), "p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "max_ms": round(max(latencies) * 1000, 2), "service_cpu_ms": round(cpu / len(signed) * 1000, 2),
            "statuses": dict(statuses)}


def _request(host: str, body: bytes, headers: dict) -> bytes:
    """The HTTP/1.1 request, written out once before the clock starts."""
    lines = [b"POST /webhooks/redmine HTTP/1.1", f"Host: {host}".encode(), f"Content-Length: {len(body)}".encode()]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def stored_events(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(InboxEvent))
    engine.dispose()
    return stored


def measure(database: str) -> dict:
    journals = count(1)
    with DATABASES[database]() as database_url, silent_redmine() as redmine_url:
        env = service_env(database_url=database_url, webhook_secret=SECRET, redmine_url=redmine_url,
                          redmine_api_key="bench", project="bench", redmine_read_timeout_seconds="3600")
        with serve(env, stop_seconds=5) as (url, process):
            gc.collect()
            gc.freeze()  # no full collection of the generator's own objects stalls its senders
            levels = []
            for concurrency, requests in REQUESTS.items():
                deliver(url, deliveries(journals, WARM_UP), concurrency, process.pid)
                levels.append(deliver(url, deliveries(journals, requests), concurrency, process.pid))
        sent = next(journals) - 1
        stored = stored_events(database_url)
    return {"database": database, "levels": levels, "deliveries": sent, "stored": stored,
            "stored_once": stored == sent and all(level["statuses"] == {202: level["requests"]} for level in levels)}


def main() -> int:
    runs = [measure(database) for database in DATABASES]
    rows = []
    for run in runs:
        for level in run["levels"]:
            level["target_met"] = level["concurrency"] != 32 or (
                level["acks_per_second"] >= TARGET_ACKS and level["p99_ms"] <= TARGET_P99_MS)
            rows.append([run["database"], level["concurrency"], level["requests"], level["acks_per_second"],
                         level["p50_ms"], level["p99_ms"], level["max_ms"], level["service_cpu_ms"],
                         " ".join(f"{s}×{n}" for s, n in sorted(level["statuses"].items())), level["target_met"]])
    print_table(f"B1 intake: signed deliveries to recouvrement serve (target at concurrency 32: ≥ {TARGET_ACKS:.0f} "
                f"acks/s, p99 ≤ {TARGET_P99_MS:.0f} ms)",
                ["database", "concurrency", "requests", "acks/s", "p50 ms", "p99 ms", "max ms", "service CPU ms",
                 "answers", "target"],
                rows)
    print_table("B1 stored: every distinct delivery stored once (rows of inbox_events)",
                ["database", "deliveries", "rows", "once"],
                [[r["database"], r["deliveries"], r["stored"], r["stored_once"]] for r in runs])
    write_results(NAME, {"target": {"acks_per_second": TARGET_ACKS, "p99_ms": TARGET_P99_MS, "concurrency": 32},
                         "runs": runs})
    return 0 if all(run["stored_once"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
