"""The one place that launches a browser: Debian's chromium, driven by Playwright, in a throwaway profile.

`browser_session()` starts `/usr/bin/chromium` (Playwright never downloads a browser here; a missing
chromium is an error naming `scripts/test-tools.sh`) headless with a new, empty profile and a temporary
HOME, and yields a `BrowserSession`: its page, its context, and what the pages reported while it ran
(`Observed`: console messages, uncaught page errors, requests that failed and responses with an error
status), plus `screenshot()` writing PNGs to the artifacts directory (`ARTIFACTS_DIR`, or `artifacts/` in
the repository).

HTTPS without shortcuts: TLS errors are never ignored. `trust_ca=` adds CA certificates (PEM) to the
profile's own NSS database (`$HOME/.pki/nssdb`, where chromium on Linux reads user-added trust anchors;
`certutil` from Debian's `libnss3-tools`), so a page served with a certificate from that CA loads and one
from any other CA fails as it would for a user. `hosts=` maps names to the Docker host's address on the
other host's link in chromium's resolver, so `https://<name>:<port>` is opened with its real name (the
name the certificate holds and the origin the backend's CORS list names).

`BrowserSession.observe(action)` runs one step with a clean record and watches a few seconds more (late
failures: reconnect timers, polls). Chromium aborts whatever is in flight when its host's interfaces
change (`net::ERR_NETWORK_CHANGED`), as the Docker host's do whenever dockerd creates or removes a
network for a stack: so the browser runs on another host (`host=`, `testkit.netns`), whose namespace
nothing changes once it is handed out, and such an error is a failure like any other.

Every wait has a timeout fitted to a cold 2-core machine; failures raise Playwright's TimeoutError naming
what was awaited.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response, WebSocket, sync_playwright

from testkit.netns import Host

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CERTUTIL = "certutil"
ARTIFACTS_ENV = "ARTIFACTS_DIR"
DEFAULT_ARTIFACTS = ROOT / "artifacts"
#: As root chromium refuses to start without --no-sandbox; the rest keep a test run to the pages it opens
#: (no update checks, sync, field trials or QUIC to hosts outside this machine) and to one CPU path.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-quic",
    "--no-proxy-server",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
)
#: Starting chromium cold (first run on the machine: fonts, shared libraries off disk).
LAUNCH_TIMEOUT_MS = 90_000
#: A navigation of a production Next.js page whose backend is cold.
NAVIGATION_TIMEOUT_MS = 60_000
#: Any other wait (an element to appear, a click to be actionable).
ACTION_TIMEOUT_MS = 30_000
CERTUTIL_TIMEOUT_SECONDS = 60
VIEWPORT = {"width": 1366, "height": 900}
#: How long a page is still watched after it showed its data: late failures (a reconnect timer, a poll).
OBSERVE_MS = 5_000
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
ERROR_STATUS = 400


@dataclass(frozen=True)
class ConsoleEntry:
    """One console message of a page."""

    type: str
    """`log`, `info`, `warning`, `error`, ..."""
    text: str
    url: str
    """Where it was logged from (script URL), when chromium says."""

    def __str__(self) -> str:
        """One line: type, text, source."""
        return f"console.{self.type}: {self.text}" + (f" ({self.url})" if self.url else "")


@dataclass(frozen=True)
class FailedRequest:
    """A request that failed: no response, an error status, or a broken WebSocket.

    No response: refused, TLS, CORS, aborted. Error status: >= 400. A WebSocket: method `WS`.
    """

    method: str
    url: str
    reason: str
    """Chromium's error text (`net::ERR_...`) or `HTTP <status>`."""
    status: int = 0
    """The response's status; 0 when there was none."""

    def __str__(self) -> str:
        """One line: method, URL, reason."""
        return f"{self.method} {self.url}: {self.reason}"


@dataclass
class Observed:
    """What the pages of one session reported, in order."""

    console: list[ConsoleEntry] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    """Uncaught exceptions in a page's scripts."""
    failed_requests: list[FailedRequest] = field(default_factory=list)
    """Requests without a response and responses with an error status."""

    def clear(self) -> None:
        """Forget everything so far (e.g. the expected 401 of the session check before a login)."""
        self.console.clear()
        self.page_errors.clear()
        self.failed_requests.clear()

    def console_errors(self) -> list[ConsoleEntry]:
        """The console messages of type `error`."""
        return [entry for entry in self.console if entry.type == "error"]

    def failed(self, url_prefix: str = "") -> list[FailedRequest]:
        """The failed requests whose URL starts with `url_prefix` (all of them by default)."""
        return [request for request in self.failed_requests if request.url.startswith(url_prefix)]

    def problems(self, api_prefix: str = "") -> list[str]:
        """Console errors, page errors and failed requests (to `api_prefix` only, if given), as lines."""
        return [
            *(str(entry) for entry in self.console_errors()),
            *(f"page error: {error}" for error in self.page_errors),
            *(f"failed request: {request}" for request in self.failed(api_prefix)),
        ]

    def snapshot(self) -> Observed:
        """A copy of what was observed so far."""
        return Observed(list(self.console), list(self.page_errors), list(self.failed_requests))

    def report(self) -> str:
        """Everything observed, one line each (for a failure message)."""
        lines = [
            *(str(entry) for entry in self.console),
            *(f"page error: {error}" for error in self.page_errors),
            *(f"failed request: {request}" for request in self.failed_requests),
        ]
        return "\n".join(lines) or "(nothing)"


def artifacts_dir() -> Path:
    """The directory screenshots go to: `ARTIFACTS_DIR`, else `<repo>/artifacts`; created."""
    path = Path(os.environ.get(ARTIFACTS_ENV) or DEFAULT_ARTIFACTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class BrowserSession:
    """A running browser profile: its context, its first page and what its pages reported."""

    context: BrowserContext
    page: Page
    observed: Observed
    artifacts: Path
    prefix: str = ""
    """Put before every screenshot's name (e.g. the test's name)."""

    def screenshot(self, name: str, page: Page | None = None) -> Path:
        """Save a full-page PNG of `page` (default: the session's page) as `<prefix><name>.png`; its path."""
        path = self.artifacts / f"{SAFE_NAME.sub('-', self.prefix + name)}.png"
        (page or self.page).screenshot(path=str(path), full_page=True, timeout=ACTION_TIMEOUT_MS)
        return path

    def cookies(self, url: str) -> list[dict[str, Any]]:
        """The cookies the browser would send to `url` (with their HttpOnly, Secure and SameSite flags)."""
        return [dict(cookie) for cookie in self.context.cookies(url)]

    def observe(self, action: Callable[[], T], window_ms: float = OBSERVE_MS) -> tuple[T, Observed]:
        """Run `action` with a clean record, watch `window_ms` more; (its result, what the pages reported)."""
        self.observed.clear()
        result = action()
        self.page.wait_for_timeout(window_ms)
        return result, self.observed.snapshot()

    def watch(self, page: Page) -> Page:
        """Collect `page`'s console messages, errors and failed requests into `observed`; returns `page`."""
        _watch(page, self.observed)
        return page


def _watch(page: Page, observed: Observed) -> None:
    def on_console(message: ConsoleMessage) -> None:
        location = message.location or {}
        observed.console.append(ConsoleEntry(message.type, message.text, str(location.get("url") or "")))

    def on_request_failed(request: Request) -> None:
        observed.failed_requests.append(FailedRequest(request.method, request.url, request.failure or "failed"))

    def on_response(response: Response) -> None:
        if response.status >= ERROR_STATUS:
            request = response.request
            observed.failed_requests.append(
                FailedRequest(request.method, response.url, f"HTTP {response.status}", response.status)
            )

    def on_websocket(socket: WebSocket) -> None:
        # A WebSocket that cannot connect or breaks is no `requestfailed`: chromium reports it here.
        socket.on(
            "socketerror", lambda error: observed.failed_requests.append(FailedRequest("WS", socket.url, str(error)))
        )

    page.on("console", on_console)
    page.on("websocket", on_websocket)
    page.on("pageerror", lambda error: observed.page_errors.append(f"{error.name}: {error.message}"))
    page.on("requestfailed", on_request_failed)
    page.on("response", on_response)


def _pem_blocks(pem: str | bytes) -> list[str]:
    text = pem.decode() if isinstance(pem, bytes) else pem
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, flags=re.DOTALL)
    if not blocks:
        raise ValueError("trust_ca: no PEM certificate (-----BEGIN CERTIFICATE-----) in what was given")
    return blocks


def trust_in_nssdb(home: Path, certificates: Iterable[str | bytes]) -> Path:
    """Create `home/.pki/nssdb` trusting each PEM certificate as a CA for TLS servers; its path."""
    certutil = shutil.which(CERTUTIL)
    if certutil is None:
        raise RuntimeError("certutil is missing (Debian's libnss3-tools; `bash scripts/test-tools.sh` installs it)")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    database = f"sql:{nssdb}"

    def run(*args: str, stdin: str | None = None) -> None:
        done = subprocess.run(  # noqa: S603 - certutil with arguments made here
            [certutil, "-d", database, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CERTUTIL_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"certutil {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")

    run("-N", "--empty-password")
    index = 0
    for pem in certificates:
        for block in _pem_blocks(pem):
            index += 1
            path = nssdb / f"ca-{index}.pem"
            path.write_text(block + "\n")
            # C,,: a trusted CA for TLS server certificates (not for mail or code signing).
            run("-A", "-t", "C,,", "-n", f"argusai test CA {index}", "-i", str(path))
    return nssdb


def _ca_list(trust_ca: str | bytes | Sequence[str | bytes] | None) -> list[str | bytes]:
    if trust_ca is None:
        return []
    if isinstance(trust_ca, str | bytes):
        return [trust_ca]
    return list(trust_ca)


def resolver_rules(hosts: Iterable[str], address: str) -> str:
    """Chromium's `--host-resolver-rules` value mapping every name in `hosts` to `address`."""
    names = list(hosts)
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9.-]+", name):
            raise ValueError(f"hosts: not a host name: {name!r}")
    return ",".join(f"MAP {name} {address}" for name in names)


@contextmanager
def browser_session(
    *,
    host: Host,
    trust_ca: str | bytes | Sequence[str | bytes] | None = None,
    hosts: Iterable[str] = (),
    prefix: str = "",
    artifacts: Path | None = None,
) -> Iterator[BrowserSession]:
    """Launch headless chromium in a new profile; yield its session; close it and remove the profile.

    Args:
        host: the other host (`testkit.netns`) chromium runs on, in its network namespace, as a phone or a
            laptop on the household's network would; never the Docker host itself.
        trust_ca: PEM certificate(s) of CAs the profile trusts for HTTPS (besides the system's roots).
        hosts: names chromium resolves to the Docker host's address on `host`'s link (e.g. `["argusai.lan"]`).
        prefix: put before every screenshot's file name.
        artifacts: where screenshots go (default: `artifacts_dir()`).

    Yields:
        The session: `page` (watched), `context`, `observed`, `screenshot()`.
    """
    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM} is missing (`bash scripts/test-tools.sh` installs Debian's chromium)")
    with tempfile.TemporaryDirectory(prefix="argusai-browser-") as scratch:
        home = Path(scratch) / "home"
        profile = Path(scratch) / "profile"
        home.mkdir()
        profile.mkdir()
        cas = _ca_list(trust_ca)
        if cas:
            trust_in_nssdb(home, cas)
        args = list(CHROMIUM_ARGS)
        names = list(hosts)
        if names:
            args.append(f"--host-resolver-rules={resolver_rules(names, host.docker_host)}")
        # Playwright talks to chromium over pipes, which cross into the namespace with the process.
        executable = Path(scratch) / "chromium-on-another-host"
        executable.write_text(f'#!/bin/sh\nexec ip netns exec {host.namespace} {CHROMIUM} "$@"\n')
        executable.chmod(0o755)
        # Chromium reads its NSS database (and any other per-user state) under HOME: a temporary one keeps
        # the machine's user out of the test and the test out of the user's.
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        env.pop("SSLKEYLOGFILE", None)
        observed = Observed()
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(executable),
                headless=True,
                args=args,
                env=env,
                timeout=LAUNCH_TIMEOUT_MS,
                viewport=VIEWPORT,  # type: ignore[arg-type]
                locale="en-US",
                timezone_id="UTC",
            )
            try:
                context.set_default_timeout(ACTION_TIMEOUT_MS)
                context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
                # A persistent context opens with one blank page, before any handler could see it.
                for existing in context.pages:
                    _watch(existing, observed)
                context.on("page", lambda page: _watch(page, observed))
                page = context.pages[0] if context.pages else context.new_page()
                yield BrowserSession(
                    context=context,
                    page=page,
                    observed=observed,
                    artifacts=artifacts or artifacts_dir(),
                    prefix=prefix,
                )
            finally:
                context.close()
