"""An `up` ended while it creates a container (SIGHUP, SIGKILL) leaves nothing the next `up` cannot repair.

The applier models the engine's pending create: dockerd holds the container, the state does not. The next
`up` must converge with no `docker rm` by hand (components/leftovers.py): the README's recovery, less its
`pulumi cancel`, which clears the backend's lock (the kit keeps none). A container of that name that is
not the stack's is left alone and named in the error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pulumi
import pytest

from testkit.applier import INTERRUPT_PHASES, ApplyError, Interrupted, ordered_containers
from testkit.provider import CONTAINER

from .conftest import FRONTEND_IMAGE, POSTGRES_IMAGE, Stack, record_result, wait_for

pytestmark = pytest.mark.integration

CONFIG = {"database": "postgres", "frontendImage": FRONTEND_IMAGE, "backupIntervalHours": 1}
HEALTH_TIMEOUT = 60
#: The leftover of the settle test is `starting` this long (PostgreSQL's first initialisation, shortened).
STARTING_SECONDS = 6
HEALTH_INTERVAL_NS = 1_000_000_000
#: dockerd's event filter counts whole seconds: wait past the current one for the last events.
EVENTS_SETTLE = timedelta(seconds=2)
#: Inside the leftover: there once its start finished.
STARTED = "/run/started"
KEYS = ("ENCRYPTION_KEY", "JWT_SECRET_KEY", "DATABASE_URL")


def _in_state(stack: Stack, name: str) -> bool:
    return any(r.type == CONTAINER and r.outputs.get("name") == name for r in stack.state.resources.values())


def _keys(stack: Stack) -> dict[str, str]:
    env = stack.client.containers.get(stack.physical("backend")).attrs["Config"]["Env"]
    return {k: v for k, v in (e.split("=", 1) for e in env) if k in KEYS}


@pytest.mark.parametrize("first", range(len(INTERRUPT_PHASES)))
def test_an_up_ended_at_any_container_is_repaired_by_the_next(stack: Stack, first: int) -> None:
    """Ended at each container in turn, each phase in one of the two runs: the next `up` goes on."""
    ended: list[str] = []
    while True:
        # The order of this very run (independent containers come in the order the program declared them).
        deployment = stack.program(CONFIG)
        order = [reg.plain("name") for reg in ordered_containers(deployment)]
        name = next((n for n in order if not _in_state(stack, n) and n not in ended), None)
        if name is None:
            break
        phase = INTERRUPT_PHASES[(first + len(ended)) % len(INTERRUPT_PHASES)]
        stack.applier.interrupt = (name, phase)
        with pytest.raises(Interrupted, match=f"{name} {phase}"):
            stack.apply(deployment)
        ended.append(name)
        assert stack.client.containers.get(name), f"{name}: dockerd holds it"
        assert not _in_state(stack, name), f"{name}: the state does not know it (a pending create)"
    stack.up(CONFIG)
    assert all(_in_state(stack, name) for name in ended)
    wait_for("backend /health 200", stack.healthy, HEALTH_TIMEOUT)
    running = {c.name for c in stack.client.containers.list(filters={"label": f"argusai.stack={stack.name}"})}
    assert {stack.physical(role) for role in ("postgres", "backend", "frontend", "proxy", "backup")} <= running

    # A replacement ended while the new backend starts: data and keys as they were after the next `up`.
    stack.post_notes(["before-the-interrupted-replacement"])
    keys = _keys(stack)
    changed = {**CONFIG, "logLevel": "DEBUG"}
    stack.applier.interrupt = (stack.physical("backend"), "started")
    with pytest.raises(Interrupted):
        stack.up(changed)
    stack.up(changed)
    wait_for("backend /health 200", stack.healthy, HEALTH_TIMEOUT)
    assert "before-the-interrupted-replacement" in stack.notes()
    assert _keys(stack) == keys
    record_result(
        f"RESULT interrupted up: ended at {len(ended)} containers in turn (first {INTERRUPT_PHASES[first]}), "
        "each repaired by the next up"
    )


def test_a_container_of_that_name_not_the_stacks_is_left_alone(stack: Stack) -> None:
    """Not ours (no labels of this stack): the `up` stops, names it, and the container is untouched."""
    name = stack.physical("backend")
    foreign = stack.client.containers.create(POSTGRES_IMAGE, ["sleep", "600"], name=name)
    try:
        with pytest.raises(ApplyError, match=f"a container named {name} is on the Docker host and is not this"):
            stack.up(CONFIG)
        foreign.reload()
        assert foreign.name == name
        assert not _in_state(stack, name)
    finally:
        foreign.remove(force=True)
    stack.up(CONFIG)
    wait_for("backend /health 200", stack.healthy, HEALTH_TIMEOUT)


def test_a_leftover_still_starting_is_let_finish_before_it_is_stopped(stack: Stack) -> None:
    """PostgreSQL stopped in its first initialisation keeps a data directory with no database in it.

    The leftover is this stack's PostgreSQL by name and labels, `starting` for a few seconds and then
    healthy; dockerd's own events must show it healthy before it was stopped.
    """
    name = stack.physical("postgres")
    deployment = stack.program(CONFIG)
    (reg,) = [r for r in deployment.of_type(CONTAINER) if r.plain("name") == name]
    (hook,) = [deployment.hooks[hook] for hook in reg.before_create]
    since = datetime.now(tz=UTC) - timedelta(seconds=1)
    leftover = stack.client.containers.run(
        POSTGRES_IMAGE,
        ["sh", "-c", f"sleep {STARTING_SECONDS}; touch {STARTED}; exec sleep 600"],
        name=name,
        labels={label["label"]: label["value"] for label in reg.plain("labels")},
        detach=True,
        # `starting` until the file is there, as the program's waiting healthchecks are while they wait.
        healthcheck={
            "test": ["CMD", "test", "-f", STARTED],
            "interval": HEALTH_INTERVAL_NS,
            "start_period": HEALTH_TIMEOUT * HEALTH_INTERVAL_NS,
        },
    )
    try:
        wait_for(f"{name} starting", lambda: stack.health("postgres") == "starting", HEALTH_TIMEOUT)
        # The engine's call of the hook before it creates that name, alone.
        hook.callback(pulumi.ResourceHookArgs(urn=reg.urn, id="", name=reg.name, type=reg.type, new_inputs={}))
        assert not stack.client.containers.list(all=True, filters={"name": f"^/{name}$"})
    finally:
        if stack.client.containers.list(all=True, filters={"name": f"^/{name}$"}):
            leftover.remove(force=True)
    events = stack.client.events(
        since=since, until=datetime.now(tz=UTC) + EVENTS_SETTLE, filters={"container": leftover.id}, decode=True
    )
    actions = [event["Action"] for event in events]
    assert "health_status: healthy" in actions, actions
    assert actions.index("health_status: healthy") < actions.index("kill"), actions
