"""The real ArgusAI release's HTTP API, as the benchmarks and load tests use it.

Calls, a seeded admin session, and a client that writes events at a steady rate and remembers every one
the API acknowledged. Everything goes to a base URL on this machine (a published port on loopback, or the proxy).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

HTTP_OK = 200
HTTP_CREATED = 201
HTTP_NOT_FOUND = 404
#: One request; a write held by a lock the backend waits on (5 s for SQLite) still answers within it.
REQUEST_TIMEOUT_SECONDS = 10
READY_TIMEOUT_SECONDS = 300
POLL_SECONDS = 0.2
LOGIN_PATH = "/api/v1/auth/login"
CAMERA = {"name": "Porch", "type": "rtsp", "rtsp_url": "rtsp://127.0.0.1:8554/p", "is_enabled": False}
EVENT = {
    "timestamp": "2026-11-30T18:45:00Z",
    "description": "Person at the porch carrying a parcel",
    "confidence": 87,
    "objects_detected": ["person", "package"],
}


def _request(base_url: str, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any, str]:
    """One request; (status, JSON body, Set-Cookie header), status 0 when nothing answered in time."""
    request = urllib.request.Request(  # noqa: S310 - http(s) on this machine only
        f"{base_url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null"), response.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as exc:
        return exc.code, None, ""
    except (OSError, ValueError):
        return 0, None, ""


def call(base_url: str, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    """One request; (status, JSON body), status 0 when nothing answered in time."""
    status, answer, _ = _request(base_url, method, path, body, token)
    return status, answer


class _OncePerSecond:
    """Lets one caller through per wall-clock second, process-wide: the next waits for the next second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = -1

    def run(self, action: Callable[[], T]) -> T:
        """Run `action` in a wall-clock second no earlier run of this gate ended in."""
        with self._lock:
            now = time.time()
            if math.floor(now) <= self._last:
                time.sleep(self._last + 1 - now)
            try:
                return action()
            finally:
                self._last = math.floor(time.time())


#: The release signs its access token with its times in whole seconds (`app/utils/jwt.py`: `iat`, `exp`)
#: and keeps each token's hash once (`sessions.token_hash`, unique): a second login of a user in the
#: same second gets the same token, and the release answers it 500. The kit's logins go through this
#: gate, so the second one gets a token of a later second.
_LOGINS = _OncePerSecond()


def login(base_url: str, password: str) -> tuple[int, Any, str]:
    """The admin's login (`POST LOGIN_PATH`), never in the same second as the kit's last; (status, body, cookie)."""
    return _LOGINS.run(lambda: _request(base_url, "POST", LOGIN_PATH, {"username": "admin", "password": password}))


def wait_health(base_url: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Until `/health` answers 200."""
    deadline = time.monotonic() + timeout
    while call(base_url, "GET", "/health")[0] != HTTP_OK:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base_url}/health did not answer 200 within {timeout:g} s")
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class Session:
    """An admin session on one stack, with the camera events are written for."""

    base_url: str
    token: str
    camera_id: str


def sign_in(base_url: str, password: str) -> str:
    """Log in as admin; the bearer token."""
    status, body, _ = login(base_url, password)
    if status != HTTP_OK:
        raise RuntimeError(f"admin login answered {status}")
    return str(body["access_token"])


def seed(base_url: str, password: str) -> Session:
    """Log in as admin, make a camera through the API and one event for it."""
    token = sign_in(base_url, password)
    status, camera = call(base_url, "POST", "/api/v1/cameras", CAMERA, token)
    if status != HTTP_CREATED:
        raise RuntimeError(f"camera create answered {status}")
    session = Session(base_url, token, str(camera["id"]))
    if post_event(session, 0)[0] != HTTP_CREATED:
        raise RuntimeError("the first event was refused")
    return session


def post_event(session: Session, number: int) -> tuple[int, Any]:
    """Write event `number` for the session's camera; (status, body)."""
    body = {**EVENT, "camera_id": session.camera_id, "description": f"{EVENT['description']} #{number}"}
    return call(session.base_url, "POST", "/api/v1/events", body, session.token)


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time between two successes in [start, end] (the edges count as successes)."""
    marks = [start, *(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False))


@dataclass
class EventWriter:
    """Writes events through the API, `rate` a second (0: as fast as answers come), until stopped.

    Every event the API acknowledged (201) is kept by id, so what a fault lost can be counted.
    """

    session: Session
    rate: float
    acknowledged: list[str] = field(default_factory=list)
    acknowledged_at: list[float] = field(default_factory=list)
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> EventWriter:
        """Begin writing in a thread of its own."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> EventWriter:
        """Stop, after the request in flight (bounded by REQUEST_TIMEOUT_SECONDS)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT_SECONDS * 2)
        return self

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            began = time.monotonic()
            status, body = post_event(self.session, number)
            ended = time.monotonic()
            self.latencies.append(ended - began)
            if status == HTTP_CREATED:
                self.acknowledged.append(str(body["id"]))
                self.acknowledged_at.append(ended)
            else:
                self.failed += 1
            if self.rate:
                self._stop.wait(max(0.0, began + 1 / self.rate - time.monotonic()))

    def longest_latency(self) -> float:
        """The longest one write took, answered or not."""
        return max(self.latencies, default=0.0)


def missing_events(session: Session, ids: list[str]) -> list[str]:
    """The events of `ids` the API no longer has (404), one by one: the figure that must stay empty.

    One by one, not by pages: the writer's events share a timestamp, and pages ordered by it may skip rows.
    Any answer but 200 or 404 is an error, never counted as either.
    """
    missing = []
    for event_id in ids:
        status, _ = call(session.base_url, "GET", f"/api/v1/events/{event_id}", token=session.token)
        if status == HTTP_NOT_FOUND:
            missing.append(event_id)
        elif status != HTTP_OK:
            raise RuntimeError(f"GET /api/v1/events/{event_id} answered {status}")
    return missing
