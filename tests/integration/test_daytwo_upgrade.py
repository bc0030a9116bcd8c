"""Day two on the real release: a PostgreSQL major upgrade that cannot eat the data.

With Debian bookworm's PostgreSQL 15 and trixie's 17, in stand-ins honouring the official image's contract:

- the image alone is refused with the server untouched; with `postgresUpgrades` the data is dumped and
  restored into a volume of its own while the client writes, every acknowledged event is there on 17,
  the old volume kept; the way back serves the old volume, writable again; asked for again, the upgrade
  is refused while the new volume holds the older upgrade, and done afresh once it is removed;
- an upgrade whose new volume is too small: `tests/integration/test_daytwo_secrets.py` (its failures' stack).
"""

from __future__ import annotations

import time

import pytest

from testkit.applier import ApplyError
from testkit.images.recipes import POSTGRES_17
from testkit.release_api import (
    HTTP_CREATED,
    Session,
    missing_events,
    post_event,
    sign_in,
)

from .conftest import Stack, record_result, wait_for
from .test_argusai_deploy import HEALTHY_TIMEOUT, admin_password
from .test_daytwo_secrets import POSTGRES, server_major, started
from .test_load import RECOVERY_TIMEOUT, report_fault, resumed, writing

pytestmark = [pytest.mark.argusai, pytest.mark.daytwo]

UPGRADED = {**POSTGRES, "postgresImage": POSTGRES_17.tag, "postgresUpgrades": [17]}


def _volume_major(stack: Stack, role: str) -> str:
    code, output = stack.oneoff(
        stack.container("postgres").image.id,
        ["cat", "/v/PG_VERSION"],
        volumes={stack.physical(role): {"bind": "/v", "mode": "ro"}},
    )
    assert code == 0, output
    return output.strip()


def test_a_new_major_is_refused_then_upgraded_with_every_row_and_the_way_back_works(stack: Stack) -> None:
    """15 -> 17: refused alone; with postgresUpgrades, every acknowledged event on 17; back to 15, writable."""
    stack.up(POSTGRES)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    server = started(stack, "postgres")
    with pytest.raises(ApplyError, match="pgdata-check"):
        stack.up({**POSTGRES, "postgresImage": POSTGRES_17.tag})
    assert started(stack, "postgres") == server, "the refused image left the server as it was"
    assert stack.healthy()

    writer = writing(stack)
    began = time.monotonic()
    try:
        stack.up(UPGRADED)
        up_seconds = time.monotonic() - began
        wait_for("the backend on 17", stack.healthy, HEALTHY_TIMEOUT)
        wait_for("writes acknowledged again", resumed(writer, time.monotonic()), RECOVERY_TIMEOUT)
    finally:
        writer.stop()
    before_way_back = list(writer.acknowledged)
    assert server_major(stack) == "17"
    assert (_volume_major(stack, "pgdata"), _volume_major(stack, "pgdata-17")) == ("15", "17")
    report_fault("major-upgrade-15-to-17", writer, began, time.monotonic())
    log = stack.exec("backup", ["cat", "/backups/steps/pg-upgrade.log"])[1].strip().splitlines()[-1]
    record_result(f"RESULT daytwo major upgrade 15 -> 17 under writes: up {up_seconds:.1f} s; {log}")

    # The way back: the old volume, as it was when the upgrade began, and writable.
    stack.up(POSTGRES)
    wait_for("the backend back on 15", stack.healthy, HEALTHY_TIMEOUT)
    assert server_major(stack) == "15"
    session = writer.session
    back = Session(session.base_url, sign_in(session.base_url, admin_password(stack)), session.camera_id)
    written: list[str] = []

    def write_on_15() -> bool:
        status, body = post_event(back, 0)
        if status == HTTP_CREATED:
            written.append(str(body["id"]))
        return status == HTTP_CREATED

    assert wait_for("a write on 15 again", write_on_15, RECOVERY_TIMEOUT)
    back_id = written[0]
    missing = missing_events(back, before_way_back)
    # Only what was written on 17 (after the old database turned read-only) is not on 15.
    assert len(missing) < len(before_way_back)
    record_result(
        f"RESULT daytwo way back to 15: serving, writable; {len(before_way_back) - len(missing)} of "
        f"{len(before_way_back)} events there (the rest were written on 17)"
    )

    # The upgrade asked for again: refused while the new volume holds the older upgrade; removed (its version
    # check holds it mounted: removed first, as the message says), done afresh.
    with pytest.raises(ApplyError, match="pg-upgrade"):
        stack.up(UPGRADED)
    assert server_major(stack) == "15"
    stack.container("pgdata-check").remove(force=True)
    stack.client.volumes.get(stack.physical("pgdata-17")).remove()
    stack.up(UPGRADED, refresh=True)
    wait_for("the backend on 17 again", stack.healthy, HEALTHY_TIMEOUT)
    assert server_major(stack) == "17"
    assert missing_events(back, [back_id]) == []
    record_result(
        "RESULT daytwo upgrade again after the way back: refused on the older upgrade; removed, upgraded afresh"
    )
