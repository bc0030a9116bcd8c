"""A small, obvious stand-in for `pulumi up` / `pulumi destroy` against a real Docker engine.

There is no Pulumi CLI on the test machines, so the integration tests take what the real program
declared under the mock harness (a :class:`~testkit.harness.Deployment`) and apply it with the Docker
SDK, keeping a :class:`~testkit.plan.State` between runs as the engine does:

- the plan comes from :func:`testkit.plan.plan`: the new inputs against the state the provider read back
  from dockerd (durations as Go prints them, log options as dockerd merged them, ports as dockerd lists
  them), force-new fields, `replaceOnChanges`, init errors, protect, retain-on-delete;
- containers are created, updated and replaced as the engine schedules them: each once everything it
  depends on is done, independent ones side by side (the driver beside PostgreSQL, the frontend's check
  beside the backend's steps); after a failure no new one starts and those under way finish and are
  saved; after an interruption (the engine killed) nothing more is saved;
- containers are created as pulumi-docker 5 creates them: on the default bridge, then moved to their
  networks; started; with `wait`, polled until healthy (an inspect that fails, as for a container removed
  on exit, fails the wait at once) until `waitTimeout`; a failed wait leaves the container in the state
  with an init error and stops the update, so nothing that depends on it is touched;
- unchanged resources are left alone (no re-wait); updates change only what the provider updates in
  place (the restart policy); replacements delete first where `deleteBeforeReplace` says so; deletes
  stop with the grace period only when `destroyGraceSeconds` is set; retained volumes are only forgotten;
- `attach` containers (one-shot jobs) are waited for until they exit, never failing on their exit code,
  and with `logs` what they printed is kept as `containerLogs`, which no read-back touches again; their
  delete skips the stop;
- images are looked up locally by name and pulled only when missing (the provider's `findImage`), never
  removed;
- a network created is done for the engine NETWORK_READ_DELAY_SECONDS later: the provider waits that long
  before its first read-back (`networkReadRefreshDelay`), so what depends on it (a container on it) is
  created no earlier, and what does not (a step with no network) goes on beside the wait.

Inputs it does not know fail loudly instead of being dropped.
"""

from __future__ import annotations

import copy
import io
import tarfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pulumi
import requests
from docker.errors import APIError, NotFound
from docker.types import LogConfig

from testkit import plan as planning
from testkit.harness import Deployment, Registration, labels_of, secret_paths
from testkit.provider import (
    CONTAINER,
    IMAGE,
    NETWORK,
    NETWORK_READ_DELAY_SECONDS,
    VOLUME,
    container_state_from_engine,
    duration_ns,
    is_empty,
    resource_id,
)

#: The project's directory: where the provider (run by the engine in it) resolves an upload's `source`.
PROJECT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.5
# pulumi-docker's `wait` (the Terraform provider's resourceDockerContainerCreate): inspect, then sleep one
# second while not healthy; so a container healthy at t is seen at the next whole second after its start.
WAIT_POLL_SECONDS = 1.0
LOG_TAIL = 40
#: Resources the engine applies at once (`pulumi up --parallel`, whose default is far above what a stack of
#: this size reaches): every container whose dependencies are done starts at once.
PARALLEL = 16
#: A pull on a cold machine can take minutes; a stop waits for the grace period.
PULL_TIMEOUT_SECONDS = 600
# Inputs pulumi-docker may send with their default value; any other value changes behaviour.
CONTAINER_DEFAULTS: dict[str, Any] = {
    "mustRun": True, "start": True, "attach": False, "logs": False, "removeVolumes": True,
    "privileged": False, "publishAllPorts": False,
}  # fmt: skip
CONTAINER_KEYS = {
    "name", "image", "envs", "entrypoints", "command", "volumes", "networksAdvanced", "networkMode",
    "ports", "healthcheck", "restart", "stopSignal", "stopTimeout", "logDriver", "logOpts", "labels",
    "wait", "waitTimeout", "destroyGraceSeconds", "rm", "user", "uploads", "attach", "logs", "mustRun",
}  # fmt: skip
NESTED_KEYS = {
    "volumes": {"volumeName", "containerPath", "readOnly"},
    "networksAdvanced": {"name", "aliases"},
    "ports": {"internal", "external", "ip", "protocol"},
    "healthcheck": {"tests", "interval", "timeout", "retries", "startPeriod"},
    "uploads": {"file", "content", "executable", "source", "sourceHash"},
}
# The provider's upload modes (resourceDockerContainerCreate): 0644, or 0744 when `executable`.
UPLOAD_MODE = 0o644
UPLOAD_MODE_EXECUTABLE = 0o744
KNOWN_KEYS = {
    NETWORK: {"name", "driver", "internal", "labels"},
    VOLUME: {"name", "labels"},
    IMAGE: {"name", "keepLocally"},
}
DEFAULT_WAIT_TIMEOUT = 60
# An attached job has the provider's create timeout (20 minutes) to exit.
ATTACH_TIMEOUT_SECONDS = 1200
#: Outputs the provider sets at create only; its Read keeps them as they are in the state.
CREATE_ONLY_OUTPUTS = ("containerLogs",)


class ApplyError(RuntimeError):
    """The deployment cannot be applied as declared (or the engine disagrees)."""

    def __init__(self, message: str, state: planning.State | None = None) -> None:
        """Keep the state as it stands after the failure (what the engine would have saved)."""
        super().__init__(message)
        self.state = state


class Interrupted(ApplyError):
    """The `up` was ended (SIGHUP, SIGKILL) where `Applier.interrupt` said: the state is what was saved before.

    The container being created exists in dockerd but not in the state: the engine's pending create.
    """


#: Where an `up` can be ended while it creates a container: dockerd has created it (not started), or
#: started it and the provider waits for it (health, or a one-shot step's end).
INTERRUPT_PHASES = ("created", "started")


@dataclass(frozen=True)
class Replacement:
    """What a delete-before-replace of one container did."""

    old_id: str
    new_id: str
    stop_seconds: float
    """Time the old container took to stop and be removed."""


def _check_keys(reg: Registration, known: set[str], defaults: dict[str, Any] | None = None) -> None:
    """Refuse any input this applier would otherwise silently drop."""
    for key in reg.inputs:
        value = reg.plain(key)
        if key in known or is_empty(value) or (defaults and defaults.get(key, object()) == value):
            continue
        raise ApplyError(f"{reg.name}: input '{key}' is not supported by the applier")
    for key, allowed in NESTED_KEYS.items() if reg.type == CONTAINER else ():
        value = reg.plain(key)
        for item in [value] if isinstance(value, dict) else value or []:
            extra = {k for k, v in item.items() if k not in allowed and not is_empty(v)}
            if extra:
                raise ApplyError(f"{reg.name}: input '{key}.{sorted(extra)[0]}' is not supported by the applier")


def _healthcheck(reg: Registration) -> dict[str, Any] | None:
    hc = reg.plain("healthcheck")
    if not hc:
        return None
    return {
        "Test": list(hc["tests"]),
        "Interval": duration_ns(hc.get("interval") or "0s"),
        "Timeout": duration_ns(hc.get("timeout") or "0s"),
        "Retries": int(hc.get("retries") or 0),
        "StartPeriod": duration_ns(hc.get("startPeriod") or "0s"),
    }


def _port_bindings(reg: Registration) -> dict[str, list[tuple[str, int]]]:
    bindings: dict[str, list[tuple[str, int]]] = {}
    for port in reg.plain("ports") or []:
        key = f"{int(port['internal'])}/{port.get('protocol') or 'tcp'}"
        bindings.setdefault(key, []).append((port.get("ip") or "0.0.0.0", int(port["external"])))  # noqa: S104
    return bindings


def _upload_tar(upload: dict[str, Any]) -> bytes:
    """The archive the provider copies into a container for one upload: the file, named by its path, root's."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        # `source`: the provider reads the file, relative to its working directory (the project's).
        source = upload.get("source")
        content = (PROJECT / source).read_bytes() if source else str(upload.get("content") or "").encode()
        info = tarfile.TarInfo(str(upload["file"]))
        info.size = len(content)
        info.mode = UPLOAD_MODE_EXECUTABLE if upload.get("executable") else UPLOAD_MODE
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def ordered_containers(deployment: Deployment) -> list[Registration]:
    """Containers in creation order: dependencies first, otherwise as declared."""
    pending = deployment.of_type(CONTAINER)
    urns = {c.urn for c in pending}
    done: set[str] = set()
    order: list[Registration] = []
    while pending:
        ready = next((c for c in pending if all(d in done for d in c.dependencies if d in urns)), None)
        if ready is None:
            raise ApplyError(f"dependency cycle among {[c.name for c in pending]}")
        order.append(ready)
        done.add(ready.urn)
        pending.remove(ready)
    return order


class Applier:
    """Applies and destroys Deployments on one engine, the way the Pulumi engine and pulumi-docker would."""

    def __init__(self, client: docker.DockerClient) -> None:
        """Use `client` (its low-level `api` where precision matters)."""
        self.client = client
        self.api = client.api
        self.interrupt: tuple[str, str] | None = None
        """(container name, phase of INTERRUPT_PHASES): the next `up` ends there, raising Interrupted."""
        self._hooks: dict[str, pulumi.ResourceHook] = {}
        # The `up` under way: its state (what an interruption saves a copy of) and the interruption, once
        # one happened (every step still under way then ends too: the engine is gone).
        self._applying = planning.State()
        self._killed: Interrupted | None = None
        # When each network created in the `up` under way is done for the engine (monotonic), by URN.
        self._networks_done_at: dict[str, float] = {}
        self._kill_lock = threading.Lock()

    # --- pulumi up -------------------------------------------------------------------------------------

    def up(self, deployment: Deployment, state: planning.State, *, refresh: bool = False) -> planning.State:
        """Apply `deployment` over `state`; return the new state (raise ApplyError with it on failure)."""
        self._validate(deployment)
        self._hooks = deployment.hooks
        if refresh:
            state = self.refresh(state)
        steps = planning.plan(state, deployment)
        if steps.refusals:
            raise ApplyError("; ".join(steps.refusals), state)
        new = planning.State(resources=copy.deepcopy(state.resources), outputs=state.outputs, epoch=state.epoch)
        self._applying, self._killed, self._networks_done_at = new, None, {}
        step_of = {s.urn: s for s in steps.steps}
        # Images, networks and volumes depend on nothing the program declares: first, one by one.
        order = [*deployment.of_type(IMAGE), *deployment.of_type(NETWORK), *deployment.of_type(VOLUME)]
        try:
            # Resources of other providers (the secret generators) exist only in the state: their outputs
            # are what the (mock) provider answered.
            for reg in deployment.registrations:
                if reg.urn not in step_of or reg.type.startswith("docker:"):
                    continue
                old = new.resources.get(reg.urn)
                if step_of[reg.urn].op == "same" and old is not None:
                    old.copy_options(reg)
                    continue
                record = self._record(reg, deployment.generations.get((reg.type, reg.name), 0), old)
                new.resources[reg.urn] = self._finish(record, reg, dict(reg.outputs))
            for reg in order:
                self._step(step_of[reg.urn], reg, new)
            self._containers(ordered_containers(deployment), step_of, new)
            for step in steps.ops("delete", "forget"):
                self._delete(new.resources[step.urn], forget=step.op == "forget")
                del new.resources[step.urn]
        except Interrupted as exc:
            exc.state = exc.state or new
            raise
        except ApplyError as exc:
            exc.state = new
            raise
        for reg in deployment.registrations:  # keep the engine's order: declaration order
            if reg.urn in new.resources:
                new.resources[reg.urn] = new.resources.pop(reg.urn)
        new.outputs = dict(deployment.raw_outputs)
        return new

    def _containers(
        self, containers: list[Registration], step_of: dict[str, planning.Step], state: planning.State
    ) -> None:
        """Apply the containers' steps as the engine schedules them (see the module docstring).

        `containers` come dependencies first; one starts as soon as every container it depends on is done.
        The first failure is raised once the steps under way have finished.
        """
        urns = {reg.urn for reg in containers}
        waiting = list(containers)
        done: set[str] = set()
        running: dict[Future[None], Registration] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="applier") as pool:
            while True:
                if failure is None:
                    ready = [reg for reg in waiting if all(d in done for d in reg.dependencies if d in urns)]
                    for reg in ready:
                        waiting.remove(reg)
                        running[pool.submit(self._step, step_of[reg.urn], reg, state)] = reg
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    reg = running.pop(future)
                    error = future.exception()
                    if error is None:
                        done.add(reg.urn)
                    elif failure is None:
                        failure = error
        killed, self._killed = self._killed, None
        if killed is not None:
            raise killed
        if failure is not None:
            raise failure

    def _validate(self, deployment: Deployment) -> None:
        for reg in deployment.registrations:
            if reg.type in KNOWN_KEYS:
                _check_keys(reg, KNOWN_KEYS[reg.type])
            elif reg.type == CONTAINER:
                _check_keys(reg, CONTAINER_KEYS, CONTAINER_DEFAULTS)
            elif reg.type.startswith("docker:"):
                raise ApplyError(f"{reg.name}: resource type {reg.type} is not supported by the applier")
        for reg in deployment.of_type(IMAGE):
            if reg.plain("keepLocally") is not True:
                raise ApplyError(f"{reg.name}: only keepLocally images are supported")

    def _step(self, step: planning.Step, reg: Registration, state: planning.State) -> None:
        old = state.resources.get(reg.urn)
        if step.op == "same":
            assert old is not None
            old.inputs = reg.saved_inputs(old)
            old.copy_options(reg)
            return
        if step.op == "update":
            assert old is not None
            if reg.type == CONTAINER and "restart" in step.keys:
                self.api.update_container(old.outputs["id"], restart_policy={"Name": reg.plain("restart") or "no"})
            record = self._record(reg, old.generation, old)
            state.resources[reg.urn] = self._finish(record, reg, self._read(reg.type, record.inputs, old.outputs))
            return
        generation = 0
        if step.op == "replace":
            assert old is not None
            generation = old.generation + 1
            if reg.delete_before_replace:
                self._delete(old, forget=False)
                del state.resources[reg.urn]
        record = self._record(reg, generation, None)
        self._after_networks(reg)
        self._before_create(reg)
        try:
            outputs = self._create(reg)
        except _InitError as exc:
            record.init_errors = [str(exc)]
            state.resources[reg.urn] = self._finish(record, reg, exc.outputs)
            raise ApplyError(str(exc)) from exc
        if step.op == "replace" and old is not None and not reg.delete_before_replace:
            self._delete(old, forget=False)
        if reg.type == NETWORK:
            self._networks_done_at[reg.urn] = time.monotonic() + NETWORK_READ_DELAY_SECONDS
        state.resources[reg.urn] = self._finish(record, reg, outputs)

    def _after_networks(self, reg: Registration) -> None:
        """Wait until every network `reg` depends on that this `up` created is done for the engine."""
        done_at = max((self._networks_done_at.get(urn, 0.0) for urn in reg.dependencies), default=0.0)
        time.sleep(max(0.0, done_at - time.monotonic()))

    @staticmethod
    def _record(reg: Registration, generation: int, old: planning.ResourceState | None) -> planning.ResourceState:
        record = planning.ResourceState(
            urn=reg.urn, type=reg.type, name=reg.name, inputs=reg.saved_inputs(old), outputs={}, generation=generation
        )
        record.copy_options(reg)
        return record

    @staticmethod
    def _finish(record: planning.ResourceState, reg: Registration, outputs: dict[str, Any]) -> planning.ResourceState:
        """Give `record` what its provider read back, and the id the provider gives."""
        record.outputs = outputs
        # The id the program saw when it declared what depends on it (the harness runs the program before
        # anything is applied): for a container or a network dockerd's own is in `outputs["id"]`.
        record.id = reg.id or resource_id(reg.type, reg.name, outputs, str(outputs.get("id", "")))
        record.secret_paths = secret_paths(reg, outputs)
        return record

    def _read(self, typ: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        """What the provider's Read writes after an update (containers: from dockerd; others: inputs)."""
        if typ == CONTAINER:
            inspect = self.api.inspect_container(outputs["id"])
            kept = {key: outputs[key] for key in CREATE_ONLY_OUTPUTS if key in outputs}
            return {**container_state_from_engine(inputs, inspect), **kept, "id": outputs["id"]}
        return {**inputs, **{k: v for k, v in outputs.items() if k in ("imageId", "id")}}

    # --- create ----------------------------------------------------------------------------------------

    def _before_create(self, reg: Registration) -> None:
        """Call the resource's `before_create` hooks, as the engine does; a hook's error fails the step."""
        for name in reg.before_create:
            args = pulumi.ResourceHookArgs(urn=reg.urn, id="", name=reg.name, type=reg.type, new_inputs=reg.inputs)
            try:
                self._hooks[name](args)
            except Exception as exc:  # the engine reports any error of a before hook as the step's
                raise ApplyError(f"{reg.name}: before_create hook {name} failed: {exc}") from exc

    def _interrupt_at(self, name: str, phase: str) -> None:
        """End the `up` here when `interrupt` says so; once it ended, every step still under way ends too."""
        with self._kill_lock:
            if self._killed is None and self.interrupt == (name, phase):
                self.interrupt = None
                # What the engine had saved at that moment: nothing any step finishes later is saved.
                saved = planning.State(
                    resources=dict(self._applying.resources),
                    outputs=self._applying.outputs,
                    epoch=self._applying.epoch,
                )
                self._killed = Interrupted(f"up interrupted: {name} {phase}, not yet in the state", saved)
            if self._killed is not None:
                raise self._killed

    def _create(self, reg: Registration) -> dict[str, Any]:
        inputs = reg.plain_inputs()
        if reg.type == IMAGE:
            return {**inputs, "imageId": self._find_image(reg.plain("name"))}
        if reg.type == NETWORK:
            return {**inputs, "id": self._create_network(reg)}
        if reg.type == VOLUME:
            # Idempotent: an existing volume with this name is adopted as it is (the provider does the same).
            self.api.create_volume(reg.plain("name"), labels=labels_of(reg))
            return inputs
        return self._create_container(reg)

    def _find_image(self, name: str) -> str:
        """The provider's findImage: the local image of that name, else pull it."""
        try:
            return str(self.api.inspect_image(name)["Id"])
        except NotFound:
            pass
        try:
            for _ in self.api.pull(name, stream=True, decode=True):
                pass
            return str(self.api.inspect_image(name)["Id"])
        except (NotFound, APIError) as exc:
            raise ApplyError(f"image {name} is not on the host and could not be pulled: {exc}") from None

    def _create_network(self, reg: Registration) -> str:
        name = reg.plain("name")
        if self.api.networks(names=[name]):
            raise ApplyError(f"network {name} already exists")
        created = self.api.create_network(
            name,
            driver=reg.plain("driver") or "bridge",
            internal=bool(reg.plain("internal")),
            labels=labels_of(reg),
            check_duplicate=True,
        )
        return str(created["Id"])

    def _create_container(self, reg: Registration) -> dict[str, Any]:
        networks = reg.plain("networksAdvanced") or []
        bindings = _port_bindings(reg)
        log_driver = reg.plain("logDriver")
        host_config = self.api.create_host_config(
            binds=[
                f"{v['volumeName']}:{v['containerPath']}{':ro' if v.get('readOnly') else ''}"
                for v in reg.plain("volumes") or []
            ],
            port_bindings=bindings,
            restart_policy={"Name": reg.plain("restart")} if reg.plain("restart") not in (None, "no") else None,
            log_config=LogConfig(type=log_driver, config=reg.plain("logOpts") or {}) if log_driver else None,
            # As the provider: `network_mode` (default bridge); networks_advanced are connected afterwards.
            network_mode=reg.plain("networkMode") or "bridge",
            auto_remove=bool(reg.plain("rm")),
        )
        stop_timeout = reg.plain("stopTimeout")
        created = self.api.create_container(
            image=reg.plain("image"),
            name=reg.plain("name"),
            command=reg.plain("command") or None,
            entrypoint=reg.plain("entrypoints") or None,
            environment=reg.plain("envs") or None,
            labels=labels_of(reg),
            ports=[tuple(key.split("/")) for key in bindings] or None,
            healthcheck=_healthcheck(reg),
            stop_signal=reg.plain("stopSignal") or None,
            user=reg.plain("user") or None,
            stop_timeout=int(stop_timeout) if stop_timeout is not None else None,
            host_config=host_config,
        )
        cid = created["Id"]
        self._interrupt_at(reg.plain("name"), "created")
        if networks:
            try:
                self.api.disconnect_container_from_network(cid, "bridge")
            except APIError as exc:
                if "is not connected" not in str(exc):
                    raise
            for net in networks:
                self.api.connect_container_to_network(cid, net["name"], aliases=net.get("aliases") or None)
        # As the provider, after the networks and before start: one copy per upload, each a tar of its one file
        # extracted at `/` (each copy mounts the container's file system: some 75 ms on overlay2).
        for upload in reg.plain("uploads") or []:
            self.api.put_archive(cid, "/", _upload_tar(upload))
        self.api.start(cid)
        self._interrupt_at(reg.plain("name"), "started")
        inputs = reg.plain_inputs()
        if reg.plain("attach"):
            return {**self._attached(reg, cid), "id": cid}
        if reg.plain("wait"):
            try:
                self.wait_healthy(reg)
            except ApplyError as exc:
                try:
                    outputs = {**container_state_from_engine(inputs, self.api.inspect_container(cid)), "id": cid}
                except NotFound:
                    outputs = {**inputs, "id": cid}
                raise _InitError(str(exc), outputs) from None
        return {**container_state_from_engine(inputs, self.api.inspect_container(cid)), "id": cid}

    def _attached(self, reg: Registration, cid: str) -> dict[str, Any]:
        """As the provider with `attach`: wait until the job exits (any exit code), then read it back.

        With `logs`, stdout and stderr as one text (the provider's stdcopy into one buffer) become
        `containerLogs`.
        """
        try:
            self.api.wait(cid, timeout=ATTACH_TIMEOUT_SECONDS)
        except requests.exceptions.ConnectionError as exc:
            raise ApplyError(f"{reg.plain('name')}: unable to wait container end of execution: {exc}") from None
        outputs = container_state_from_engine(reg.plain_inputs(), self.api.inspect_container(cid))
        if reg.plain("logs"):
            outputs["containerLogs"] = self.api.logs(cid, stdout=True, stderr=True).decode(errors="replace")
        return outputs

    def wait_healthy(self, reg: Registration, timeout: float | None = None) -> None:
        """Block until the container is healthy, as the provider's `wait` does; fail with its logs otherwise.

        Like the provider: only `healthy` ends the wait early; `unhealthy` keeps polling until the timeout;
        an inspect that fails (the container is gone) fails at once.
        """
        name = reg.plain("name")
        limit = timeout or reg.plain("waitTimeout") or DEFAULT_WAIT_TIMEOUT
        deadline = time.monotonic() + float(limit)
        while True:
            try:
                health = self.api.inspect_container(name)["State"].get("Health")
            except NotFound:
                raise ApplyError(f"{name}: error inspecting container state: no such container") from None
            if health is None:
                raise ApplyError(f"{name}: 'wait' but the container has no healthcheck")
            if health.get("Status") == "healthy":
                return
            if self._killed is not None:  # the engine is gone: nobody waits any more
                raise self._killed
            if time.monotonic() > deadline:
                last = (health.get("Log") or [{}])[-1].get("Output", "")
                logs = self.api.logs(name, tail=LOG_TAIL).decode(errors="replace")
                raise ApplyError(
                    f"{name} failed to be in healthy state within {limit}s (status {health.get('Status')}); "
                    f"last probe: {last.strip()}\n--- logs ---\n{logs}"
                )
            time.sleep(WAIT_POLL_SECONDS)

    # --- delete ----------------------------------------------------------------------------------------

    def _delete(self, record: planning.ResourceState, *, forget: bool) -> None:
        if forget or record.type == IMAGE:  # retained, or keep_locally: only dropped from the state
            return
        name = record.inputs.get("name")
        if record.type == CONTAINER:
            # As the provider: an attached job is not stopped first, only removed.
            grace = None if record.inputs.get("attach") else record.inputs.get("destroyGraceSeconds")
            self._remove_container(record.outputs.get("id") or name, grace)
        elif record.type == NETWORK:
            if self.api.networks(names=[name]):
                self.api.remove_network(name)
        elif record.type == VOLUME:
            try:
                self.api.remove_volume(name)
            except NotFound:
                pass

    def _remove_container(self, ref: str, grace: int | None) -> float:
        """Delete one container as pulumi-docker does; return the seconds it took (0 if absent)."""
        started = time.monotonic()
        try:
            if grace:
                self.api.stop(ref, timeout=int(grace))  # stop signal, then SIGKILL after the grace period
            self.api.remove_container(ref, force=True, v=True)  # without grace: SIGKILL straight away
        except NotFound:
            return time.monotonic() - started
        except APIError as exc:
            # As the provider: a container created with `rm` removes itself once stopped.
            if "already in progress" not in str(exc):
                raise
            self._wait_removed(ref)
        return time.monotonic() - started

    def _wait_removed(self, ref: str) -> None:
        """Wait until a container that is removing itself is gone (the provider waits for `removed`)."""
        deadline = time.monotonic() + DEFAULT_WAIT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.api.inspect_container(ref)
            except NotFound:
                return
            time.sleep(POLL_SECONDS)
        raise ApplyError(f"container {ref} was not removed within {DEFAULT_WAIT_TIMEOUT}s")

    # --- refresh, destroy, direct operations -----------------------------------------------------------

    def refresh(self, state: planning.State) -> planning.State:
        """`pulumi refresh`: read every resource back; drop what is gone."""
        new = planning.State(outputs=state.outputs, epoch=state.epoch)
        for urn, record in state.resources.items():
            record = copy.deepcopy(record)
            name = record.inputs.get("name")
            try:
                if record.type == CONTAINER:
                    inspect = self.api.inspect_container(record.outputs.get("id") or name)
                    kept = {key: record.outputs[key] for key in CREATE_ONLY_OUTPUTS if key in record.outputs}
                    record.outputs = {
                        **container_state_from_engine(record.inputs, inspect),
                        **kept,
                        "id": inspect["Id"],
                    }
                elif record.type == IMAGE:
                    record.outputs["imageId"] = self.api.inspect_image(name)["Id"]
                elif record.type == VOLUME:
                    self.api.inspect_volume(name)
                elif record.type == NETWORK and not self.api.networks(names=[name]):
                    continue
            except NotFound:
                continue
            new.resources[urn] = record
        return new

    def destroy(self, state: planning.State) -> planning.State:
        """`pulumi destroy`: refused up front when anything is protected; retained volumes stay."""
        if protected := [r.name for r in state.resources.values() if r.protect]:
            raise ApplyError(f"refusing to delete protected resources: {', '.join(protected)}", state)
        order = {CONTAINER: 0, NETWORK: 1, VOLUME: 2, IMAGE: 3}
        for record in sorted(reversed(list(state.resources.values())), key=lambda r: order.get(r.type, 4)):
            self._delete(record, forget=record.retain_on_delete)
        return planning.State(epoch=state.epoch + 1)

    def replace(self, state: planning.State, deployment: Deployment, role: str) -> Replacement:
        """Delete-before-replace the container of `role` (as an image upgrade would)."""
        reg = deployment.container(role)
        old_id = state.resources[reg.urn].outputs["id"]
        stop_seconds = self._remove_container(old_id, reg.plain("destroyGraceSeconds"))
        outputs = self._create(reg)
        state.resources[reg.urn].outputs = outputs
        return Replacement(old_id, outputs["id"], stop_seconds)


class _InitError(Exception):
    """A container was created but its `wait` failed: it stays in the state with this error."""

    def __init__(self, message: str, outputs: dict[str, Any]) -> None:
        super().__init__(message)
        self.outputs = outputs
