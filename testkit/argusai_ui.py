"""The real ArgusAI frontend, used as a person uses it: through its pages, in a `testkit.browser` session.

The same steps serve every way the stack is reached: `base_url` is `http://localhost:3000` with HTTPS
off, or `https://argusai.lan:<port>` through the proxy (a session trusting its CA, the name mapped to
127.0.0.1). What the release's pages do (read from its source, `frontend/app`, `components/auth`):

- every page but `/login` is wrapped in `ProtectedRoute`: before a login, `/` asks `GET /api/v1/auth/me`
  (401) and pushes `/login?returnUrl=%2F`;
- the login form (`#username`, `#password`, "Sign in") calls `POST /api/v1/auth/login`; the backend sets
  the `access_token` cookie (HttpOnly) and the page keeps the token in localStorage too; a refusal is
  shown in the form's alert ("Invalid username or password");
- a user with `must_change_password` is pushed to `/change-password` (`#newPassword`,
  `#confirmPassword`); the first-start `admin` is created without it;
- the dashboard (`/`) shows the heading "Dashboard"; the sidebar links to "Cameras" (`/cameras`), whose
  page shows "Loading cameras...", then the list, "No cameras configured yet" or "Error loading cameras".

Each step waits for what the page shows, never for a fixed time, and fails with what the page said.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from testkit.browser import ACTION_TIMEOUT_MS, NAVIGATION_TIMEOUT_MS

ADMIN = "admin"
#: The backend's cookie holding the session's access token (`app/api/v1/auth.py`, COOKIE_NAME).
SESSION_COOKIE = "access_token"
#: After a click: the API's answer, then the client-side route change and the next page's data.
STEP_TIMEOUT_MS = NAVIGATION_TIMEOUT_MS
#: Waiting for the network to go quiet after a page showed its data (bounded: it may poll).
SETTLE_TIMEOUT_MS = 5_000


class UiError(AssertionError):
    """A page did not show what the step expected; the message says what it showed instead."""


class LoginRefused(UiError):
    """The login form showed an error instead of logging in."""


def _path(page: Page) -> str:
    return urlsplit(page.url).path


def _main_text(page: Page) -> str:
    try:
        return re.sub(r"\s+", " ", page.locator("body").inner_text(timeout=ACTION_TIMEOUT_MS)).strip()[:500]
    except PlaywrightTimeoutError:
        return "(no body)"


def _first_visible(page: Page, what: str, options: dict[str, Locator], timeout: float = STEP_TIMEOUT_MS) -> str:
    """Wait until one of `options` is visible; its key. UiError naming `what` and the page when none is."""
    keys = list(options)
    combined = options[keys[0]]
    for key in keys[1:]:
        combined = combined.or_(options[key])
    try:
        combined.first.wait_for(state="visible", timeout=timeout)
    except PlaywrightTimeoutError:
        raise UiError(
            f"{what}: none of {keys} appeared within {timeout / 1000:.0f}s at {page.url}; "
            f"the page shows: {_main_text(page)!r}"
        ) from None
    for key in keys:
        if options[key].first.is_visible():
            return key
    return keys[-1]  # it went away again between the two looks: the last one is the page's final state


def dashboard_heading(page: Page) -> Locator:
    """The dashboard's own heading (in the main area, not the sidebar's link)."""
    return page.locator("main").get_by_role("heading", name="Dashboard", exact=True)


def open_login(page: Page, base_url: str) -> None:
    """Open the site's root as a new visitor and land on the login form (the app redirects there)."""
    page.goto(base_url.rstrip("/") + "/", wait_until="domcontentloaded")
    try:
        page.wait_for_url(re.compile(r".*/login(\?.*)?$"), timeout=STEP_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        raise UiError(f"opening {base_url}/ did not land on /login (at {page.url}): {_main_text(page)!r}") from None
    _first_visible(page, "the login form", {"form": page.locator("#username")})


def submit_login(page: Page, password: str, username: str = ADMIN) -> str:
    """Fill the login form and click "Sign in"; where it went: `dashboard` or `change-password`.

    Raises:
        LoginRefused: the form showed an error (its text in the message).
        UiError: neither the next page nor an error appeared.
    """
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    landed = _first_visible(
        page,
        "after clicking Sign in",
        {
            "error": page.locator("form [role=alert]"),
            "change-password": page.locator("#newPassword"),
            "dashboard": dashboard_heading(page),
        },
    )
    if landed == "error":
        message = page.locator("form [role=alert]").first.inner_text().strip()
        raise LoginRefused(f"the login form refused {username!r}: {message!r}")
    return landed


def change_password(page: Page, new_password: str) -> None:
    """On the forced password change page: set `new_password` and land on the dashboard."""
    page.locator("#newPassword").fill(new_password)
    page.locator("#confirmPassword").fill(new_password)
    page.locator("form button[type=submit]").click()
    _first_visible(page, "after changing the password", {"dashboard": dashboard_heading(page)})


def login(page: Page, base_url: str, password: str, *, username: str = ADMIN, new_password: str | None = None) -> None:
    """Open `base_url` as a new visitor, log in through the form and land on the dashboard.

    Args:
        page: a page of a `testkit.browser` session.
        base_url: where users browse to, e.g. `http://localhost:3000` or `https://argusai.lan:8443`.
        password: the user's password (the first-start admin's is in the backend's log).
        username: the user (default: the first-start `admin`).
        new_password: what to set if the release forces a password change; without it a forced change
            is an error.

    Raises:
        LoginRefused: the form showed an error.
        UiError: a page did not show what a user would see next.
    """
    open_login(page, base_url)
    landed = submit_login(page, password, username)
    if landed == "change-password":
        if new_password is None:
            raise UiError(f"the release forces {username!r} to change the password at {page.url}")
        change_password(page, new_password)
    if _path(page) != "/":
        raise UiError(f"logged in, but the dashboard is at {page.url}, not at {base_url}/")
    settle(page)


def open_dashboard(page: Page, base_url: str) -> None:
    """Load the dashboard afresh (a logged-in user's bookmark or reload) and wait for it.

    Raises:
        UiError: it did not show (e.g. the session was lost and the app went to the login).
    """
    page.goto(base_url.rstrip("/") + "/", wait_until="domcontentloaded")
    _first_visible(page, "the dashboard", {"dashboard": dashboard_heading(page)})
    settle(page)


def open_cameras(page: Page, base_url: str | None = None) -> str:
    """Open the cameras page and wait for its data; `empty` or `list`.

    Args:
        page: a logged-in page of the app.
        base_url: load `<base_url>/cameras` afresh; None: click "Cameras" in the sidebar, as a user does.

    Raises:
        UiError: the page showed "Error loading cameras" (its text in the message) or nothing settled.
    """
    if base_url is None:
        # The sidebar on a desktop-wide window (the header's links are hidden there).
        page.get_by_role("link", name="Cameras", exact=True).filter(visible=True).first.click()
    else:
        page.goto(base_url.rstrip("/") + "/cameras", wait_until="domcontentloaded")
    try:
        page.wait_for_url(re.compile(r".*/cameras(\?.*)?$"), timeout=STEP_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        raise UiError(f"the cameras page did not open (at {page.url}): {_main_text(page)!r}") from None
    main = page.locator("main")
    _first_visible(page, "the cameras page", {"heading": main.get_by_role("heading", name="Cameras", exact=True)})
    landed = _first_visible(
        page,
        "the cameras page's data",
        {
            "error": main.get_by_text("Error loading cameras"),
            "empty": main.get_by_text("No cameras configured yet"),
            "list": main.get_by_role("link", name="Edit").or_(main.get_by_role("button", name="Delete")),
        },
    )
    if landed == "error":
        raise UiError(f"the cameras page shows an error: {_main_text(page)!r}")
    settle(page)
    return landed


def settle(page: Page, timeout: float = SETTLE_TIMEOUT_MS) -> bool:
    """Wait (bounded) until no request is in flight for 500 ms; whether it got there (polling pages may not)."""
    try:
        page.wait_for_load_state("networkidle", timeout=timeout)
    except PlaywrightTimeoutError:
        return False
    return True
