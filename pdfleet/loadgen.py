"""A bounded, open-loop load of chat completions through the router, and what its clients saw.

Open loop: a request every 1/rate seconds, each on its own thread, whatever the earlier ones do, as independent
users send them (a few closed-loop client threads would all end up waiting on one stuck instance and report a
silence no user sees). Bounded: at most `max_in_flight` requests at once and `timeout` seconds each; the caller
decides how long it runs. The fault scenarios (benchmarks/faults.py) and their tests use it.

    with OpenLoad("http://10.77.0.11:8000", "DeepSeek-V3.2", rate=20) as load:
        ... break something ...
    print(summarize(load.results))   # requests, failed (by status), longest time without a successful answer
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo")


@dataclass(frozen=True)
class Result:
    sent: float  # time.monotonic() when the request was sent
    done: float  # when its answer (or error) came back
    status: int | str  # the HTTP status, or the exception's name (timeout, refused ...)
    detail: str = ""  # the start of a failure's body


def chat_once(
    url: str, model: str, timeout: float, prompt: str, max_tokens: int = 8, key: str | None = None
) -> tuple[int, str]:
    """POST /v1/chat/completions, with `Authorization: Bearer <key>` when a client key is given; (status, body)."""
    parts = urlsplit(url)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens})
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        connection.request("POST", "/v1/chat/completions", body, headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


class OpenLoad:
    """Chat completions at `rate` per second until stopped; `results` holds one Result per request."""

    def __init__(
        self,
        url: str,
        model: str,
        rate: float = 20.0,
        timeout: float = 30.0,
        max_in_flight: int = 200,
        same_prompt: bool = False,
        max_tokens: int = 8,
        key: str | None = None,
    ):
        self.url, self.model, self.rate, self.timeout = url, model, rate, timeout
        self.key = key  # the router's client key (security.api_keys), sent with every request
        self.same_prompt, self.max_tokens = same_prompt, max_tokens
        self.results: list[Result] = []
        self._slots = threading.Semaphore(max_in_flight)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._driver: threading.Thread | None = None
        self.started = self.stopped = 0.0

    def _prompt(self) -> str:
        if self.same_prompt:
            return "The same question every time."
        return " ".join(random.choice(WORDS) for _ in range(12))  # noqa: S311  (not for security)

    def _one(self) -> None:
        sent = time.monotonic()
        detail = ""
        try:
            status, body = chat_once(self.url, self.model, self.timeout, self._prompt(), self.max_tokens, self.key)
            if status != 200:
                detail = body[:200]
        except (OSError, http.client.HTTPException) as error:
            status, detail = type(error).__name__, str(error)[:200]
        with self._lock:
            self.results.append(Result(sent, time.monotonic(), status, detail))
        self._slots.release()

    def _drive(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += 1.0 / self.rate
            if self._slots.acquire(timeout=1.0):
                thread = threading.Thread(target=self._one, daemon=True)
                thread.start()
                self._threads.append(thread)
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def __enter__(self) -> OpenLoad:
        self.started = time.monotonic()
        self._driver = threading.Thread(target=self._drive, name="open-load", daemon=True)
        self._driver.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._driver is not None:
            self._driver.join()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        self.stopped = time.monotonic()


def summarize(results: list[Result], since: float | None = None, until: float | None = None) -> dict:
    """What the clients saw in [since, until] (default: from the first request sent to the last): requests sent,
    failed (by status), the longest time without a successful answer while clients were asking (between two
    answers, or from `since` / to `until`), and the slowest successful request (a request in flight on an
    instance that died may be answered late, after a retry: that wait is its client's, not an outage).

    `until` defaults to the last request *sent*: after it nobody asks, and the stragglers still finishing would
    otherwise count as a time without answers."""
    if not results:
        return {"requests": 0, "failed": 0, "codes": {}, "longest_gap_s": None, "slowest_s": None}
    since = min(r.sent for r in results) if since is None else since
    until = max(r.sent for r in results) if until is None else until
    window = [r for r in results if since <= r.sent <= until]
    failed = [r for r in window if r.status != 200]
    ok = [r for r in window if r.status == 200]
    answers = sorted(r.done for r in results if r.status == 200 and since <= r.done <= until)
    marks = [since, *answers, until]
    gaps = [(b - a, a) for a, b in zip(marks, marks[1:], strict=False)]
    longest, at = max(gaps)
    return {
        "requests": len(window),
        "failed": len(failed),
        "codes": dict(Counter(str(r.status) for r in failed)),
        "longest_gap_s": round(longest, 2),
        "longest_gap_from_s": round(at - since, 2),
        "slowest_s": round(max((r.done - r.sent for r in ok), default=0.0), 2),
        "slowest_sent_s": round(max(ok, key=lambda r: r.done - r.sent).sent - since, 2) if ok else None,
        "first_failure_s": round(min(r.sent for r in failed) - since, 2) if failed else None,
        "last_failure_s": round(max(r.done for r in failed) - since, 2) if failed else None,
        "samples": sorted({f"{r.status}: {r.detail}" for r in failed})[:3],
    }
