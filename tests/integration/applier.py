"""A small, obvious stand-in for `pulumi up` / `pulumi destroy` against a real Docker engine.

There is no Pulumi CLI on the test machines, so the integration tests take what the real program
declared under the mock harness (a :class:`harness.Deployment`) and apply it with the Docker SDK,
behaving as pulumi-docker 5 does where it matters: networks, volumes and images first, containers in
dependency order (waiting for `wait` containers to be healthy before their dependants), delete before
replace, a stop grace period only when `destroyGraceSeconds` is set, retained volumes kept on destroy,
protected resources refused, images never pulled and never removed. Inputs it does not know fail
loudly instead of being dropped.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import NotFound
from docker.types import LogConfig

from harness import CONTAINER, IMAGE, NETWORK, VOLUME, Deployment, Registration, labels_of

POLL_SECONDS = 0.5
DEFAULT_WAIT_TIMEOUT = 60
LOG_TAIL = 40
# Inputs pulumi-docker may send with their default value; any other value changes behaviour.
CONTAINER_DEFAULTS: dict[str, Any] = {
    "mustRun": True, "start": True, "attach": False, "logs": False, "rm": False, "removeVolumes": True,
    "privileged": False, "publishAllPorts": False,
}  # fmt: skip
CONTAINER_KEYS = {
    "name", "image", "envs", "entrypoints", "command", "volumes", "networksAdvanced", "networkMode",
    "ports", "healthcheck", "restart", "stopSignal", "stopTimeout", "logDriver", "logOpts", "labels",
    "wait", "waitTimeout", "destroyGraceSeconds",
}  # fmt: skip
NESTED_KEYS = {
    "volumes": {"volumeName", "containerPath", "readOnly"},
    "networksAdvanced": {"name", "aliases"},
    "ports": {"internal", "external", "ip", "protocol"},
    "healthcheck": {"tests", "interval", "timeout", "retries", "startPeriod"},
}
KNOWN_KEYS = {
    NETWORK: {"name", "driver", "internal", "labels"},
    VOLUME: {"name", "labels"},
    IMAGE: {"name", "keepLocally"},
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_NANOS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


class ApplyError(RuntimeError):
    """The deployment cannot be applied as declared (or the engine disagrees)."""


@dataclass(frozen=True)
class Replacement:
    """What a delete-before-replace of one container did."""

    old_id: str
    new_id: str
    stop_seconds: float
    """Time the old container took to stop and be removed."""


def duration_ns(text: str) -> int:
    """Turn a Docker duration such as `3s` or `1m30s` into nanoseconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ApplyError(f"not a Docker duration: {text!r}")
    return int(sum(float(n) * _NANOS[u] for n, u in parts))


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


def _check_keys(reg: Registration, known: set[str], defaults: dict[str, Any] | None = None) -> None:
    """Refuse any input this applier would otherwise silently drop."""
    for key in reg.inputs:
        value = reg.plain(key)
        if key in known or _is_empty(value) or (defaults and defaults.get(key, object()) == value):
            continue
        raise ApplyError(f"{reg.name}: input '{key}' is not supported by the applier")
    for key, allowed in NESTED_KEYS.items() if reg.type == CONTAINER else ():
        value = reg.plain(key)
        for item in [value] if isinstance(value, dict) else value or []:
            extra = {k for k, v in item.items() if k not in allowed and not _is_empty(v)}
            if extra:
                raise ApplyError(f"{reg.name}: input '{key}.{sorted(extra)[0]}' is not supported by the applier")


def _healthcheck(reg: Registration) -> dict[str, Any] | None:
    hc = reg.plain("healthcheck")
    if not hc:
        return None
    return {
        "Test": list(hc["tests"]),
        "Interval": duration_ns(hc.get("interval", "0s")),
        "Timeout": duration_ns(hc.get("timeout", "0s")),
        "Retries": int(hc.get("retries", 0)),
        "StartPeriod": duration_ns(hc.get("startPeriod", "0s")),
    }


def _port_bindings(reg: Registration) -> dict[str, list[tuple[str, int]]]:
    bindings: dict[str, list[tuple[str, int]]] = {}
    for port in reg.plain("ports") or []:
        key = f"{int(port['internal'])}/{port.get('protocol') or 'tcp'}"
        bindings.setdefault(key, []).append((port.get("ip") or "0.0.0.0", int(port["external"])))  # noqa: S104
    return bindings


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
    """Applies and destroys Deployments on one engine, the way pulumi-docker would."""

    def __init__(self, client: docker.DockerClient) -> None:
        """Use `client` (its low-level `api` where precision matters)."""
        self.client = client
        self.api = client.api

    def apply(self, deployment: Deployment) -> dict[str, str]:
        """Create what is missing or different; return container name -> id."""
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
            try:
                self.api.inspect_image(reg.plain("name"))
            except NotFound:
                raise ApplyError(f"{reg.name}: image {reg.plain('name')} is not on the host (never pulled)") from None
        for reg in deployment.of_type(NETWORK):
            self._ensure_network(reg)
        for reg in deployment.of_type(VOLUME):
            # Idempotent: an existing (retained) volume with this name is adopted as it is.
            self.api.create_volume(reg.plain("name"), labels=labels_of(reg))
        ids: dict[str, str] = {}
        by_urn = {c.urn: c for c in deployment.of_type(CONTAINER)}
        for reg in ordered_containers(deployment):
            for dep in (by_urn[d] for d in reg.dependencies if d in by_urn):
                if dep.plain("wait"):
                    self.wait_healthy(dep)
            if self._container_diff(reg):
                self._remove(reg)
                self._create(reg)
            ids[reg.plain("name")] = self.api.inspect_container(reg.plain("name"))["Id"]
        return ids

    def _ensure_network(self, reg: Registration) -> None:
        name = reg.plain("name")
        if not self.api.networks(names=[name]):
            self.api.create_network(
                name,
                driver=reg.plain("driver") or "bridge",
                internal=bool(reg.plain("internal")),
                labels=labels_of(reg),
                check_duplicate=True,
            )
        elif problems := self._network_diff(reg):
            raise ApplyError(f"network {name} differs and would be replaced (not supported): {problems}")

    def _create(self, reg: Registration) -> str:
        networks = reg.plain("networksAdvanced") or []
        mode = reg.plain("networkMode") or (networks[0]["name"] if networks else None)
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
            network_mode=mode,
        )
        endpoint = None
        if networks:
            first = networks[0]
            endpoint = self.api.create_networking_config(
                {first["name"]: self.api.create_endpoint_config(aliases=first.get("aliases") or None)}
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
            stop_timeout=int(stop_timeout) if stop_timeout is not None else None,
            host_config=host_config,
            networking_config=endpoint,
        )
        cid = created["Id"]
        for extra in networks[1:]:  # created on the first network, connected to the others before start
            self.api.connect_container_to_network(cid, extra["name"], aliases=extra.get("aliases") or None)
        self.api.start(cid)
        if reg.plain("wait"):
            self.wait_healthy(reg)
        return cid

    def wait_healthy(self, reg: Registration, timeout: float | None = None) -> None:
        """Block until the container is healthy; fail with its health log and logs otherwise."""
        name = reg.plain("name")
        limit = timeout or reg.plain("waitTimeout") or DEFAULT_WAIT_TIMEOUT
        deadline = time.monotonic() + float(limit)
        while True:
            health = self.api.inspect_container(name)["State"].get("Health") or {}
            if health.get("Status") == "healthy":
                return
            if health.get("Status") == "unhealthy" or time.monotonic() > deadline:
                last = (health.get("Log") or [{}])[-1].get("Output", "")
                logs = self.api.logs(name, tail=LOG_TAIL).decode(errors="replace")
                raise ApplyError(
                    f"{name} did not become healthy within {limit}s (status {health.get('Status')}); "
                    f"last probe: {last.strip()}\n--- logs ---\n{logs}"
                )
            time.sleep(POLL_SECONDS)

    def _remove(self, reg: Registration) -> float:
        """Delete one container as pulumi-docker does; return the seconds it took (0 if absent)."""
        try:
            cid = self.api.inspect_container(reg.plain("name"))["Id"]
        except NotFound:
            return 0.0
        started = time.monotonic()
        grace = reg.plain("destroyGraceSeconds")
        if grace:
            self.api.stop(cid, timeout=int(grace))  # stop signal, then SIGKILL after the grace period
        self.api.remove_container(cid, force=True, v=True)  # without grace: SIGKILL straight away
        return time.monotonic() - started

    def replace(self, deployment: Deployment, role: str) -> Replacement:
        """Delete-before-replace the container of `role` (as an image upgrade would)."""
        reg = deployment.container(role)
        old_id = self.api.inspect_container(reg.plain("name"))["Id"]
        stop_seconds = self._remove(reg)
        return Replacement(old_id, self._create(reg), stop_seconds)

    def destroy(self, deployment: Deployment) -> None:
        """Remove containers (reverse order), networks and non-retained volumes; keep images."""
        # Like Pulumi: the whole destroy is refused up front, before anything is deleted.
        if protected := [r.name for r in deployment.registrations if r.protect]:
            raise ApplyError(f"refusing to delete protected resources: {', '.join(protected)}")
        for reg in reversed(ordered_containers(deployment)):
            self._remove(reg)
        for reg in deployment.of_type(NETWORK):
            if self.api.networks(names=[reg.plain("name")]):
                self.api.remove_network(reg.plain("name"))
        for reg in deployment.of_type(VOLUME):
            if not reg.retain_on_delete:
                try:
                    self.api.remove_volume(reg.plain("name"))
                except NotFound:
                    pass

    def diff(self, deployment: Deployment) -> list[str]:
        """Differences between what is declared and what the engine holds ([] = nothing to do)."""
        problems: list[str] = []
        for reg in deployment.of_type(NETWORK):
            problems += self._network_diff(reg)
        for reg in deployment.of_type(VOLUME):
            try:
                actual = self.api.inspect_volume(reg.plain("name"))
            except NotFound:
                problems.append(f"volume {reg.plain('name')}: missing")
                continue
            if (actual.get("Labels") or {}) != labels_of(reg):
                problems.append(f"volume {reg.plain('name')}: labels differ")
        for reg in deployment.of_type(CONTAINER):
            problems += self._container_diff(reg)
        return problems

    def _network_diff(self, reg: Registration) -> list[str]:
        name = reg.plain("name")
        found = self.api.networks(names=[name])
        if not found:
            return [f"network {name}: missing"]
        actual = self.api.inspect_network(found[0]["Id"])
        want = {
            "Driver": reg.plain("driver") or "bridge",
            "Internal": bool(reg.plain("internal")),
            "Labels": labels_of(reg),
        }
        return [
            f"network {name}: {k} is {actual.get(k)!r}, declared {v!r}" for k, v in want.items() if actual.get(k) != v
        ]

    def _container_diff(self, reg: Registration) -> list[str]:
        name = reg.plain("name")
        try:
            info = self.api.inspect_container(name)
        except NotFound:
            return [f"container {name}: missing"]
        config, host = info["Config"], info["HostConfig"]
        image_labels = self.api.inspect_image(info["Image"])["Config"].get("Labels") or {}
        out: list[str] = []

        def check(what: str, actual: Any, declared: Any) -> None:
            if actual != declared:
                out.append(f"container {name}: {what} is {actual!r}, declared {declared!r}")

        check("image", info["Image"], reg.plain("image"))
        env = set(config.get("Env") or [])
        # Only the variable's name is reported: the values hold passwords and keys.
        out += [f"container {name}: env {e.split('=', 1)[0]} differs" for e in reg.plain("envs") or [] if e not in env]
        if reg.plain("entrypoints"):
            check("entrypoint", config.get("Entrypoint"), reg.plain("entrypoints"))
        if reg.plain("command"):
            check("command", config.get("Cmd"), reg.plain("command"))
        networks = reg.plain("networksAdvanced") or []
        attached = info["NetworkSettings"]["Networks"] or {}
        if networks:
            check("networks", sorted(attached), sorted(n["name"] for n in networks))
            for net in networks:
                aliases = set((attached.get(net["name"]) or {}).get("Aliases") or [])
                if not set(net.get("aliases") or []) <= aliases:
                    out.append(f"container {name}: aliases on {net['name']} are {sorted(aliases)}")
        else:
            check("network mode", host.get("NetworkMode"), reg.plain("networkMode") or "default")
        mounts = sorted((m.get("Name"), m["Destination"], m["RW"]) for m in info.get("Mounts") or [])
        declared_mounts = sorted(
            (v["volumeName"], v["containerPath"], not v.get("readOnly")) for v in reg.plain("volumes") or []
        )
        check("mounts", mounts, declared_mounts)
        ports = {k: [(b["HostIp"], int(b["HostPort"])) for b in v] for k, v in (host.get("PortBindings") or {}).items()}
        check("ports", ports, _port_bindings(reg))
        check("restart", host["RestartPolicy"].get("Name") or "no", reg.plain("restart") or "no")
        check("healthcheck", config.get("Healthcheck"), _healthcheck(reg))
        check("labels", config.get("Labels") or {}, {**image_labels, **labels_of(reg)})
        check("log driver", host["LogConfig"]["Type"], reg.plain("logDriver") or host["LogConfig"]["Type"])
        check("log options", host["LogConfig"].get("Config") or {}, reg.plain("logOpts") or {})
        if reg.plain("stopSignal"):
            check("stop signal", config.get("StopSignal"), reg.plain("stopSignal"))
        if reg.plain("stopTimeout") is not None:
            check("stop timeout", config.get("StopTimeout"), int(reg.plain("stopTimeout")))
        return out
