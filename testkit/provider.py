"""What pulumi-docker 5 (Terraform provider kreuzwerker/docker v4.5.0) and pulumi-random keep in state.

The engine diffs a resource's new inputs against the state the provider last read back, not against the
inputs it was given. This module holds, for the resource types the program declares, which fields are
force-new, which are optional+computed (absent = keep the state's value), their schema defaults, which
are sets (order-free), and how the provider reads a container back from dockerd (durations as Go's
`Duration.String()`, log options as dockerd merged them, ports as dockerd lists them). Read from
`internal/provider/resource_docker_{container,volume,network,image}.go` at v4.5.0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
IMAGE = "docker:index/remoteImage:RemoteImage"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a type token
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
RANDOM_ID = "random:index/randomId:RandomId"
RANDOM_SHUFFLE = "random:index/randomShuffle:RandomShuffle"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
GET_REGISTRY_IMAGE = "docker:index/getRegistryImage:getRegistryImage"
GET_NETWORK = "docker:index/getNetwork:getNetwork"
GET_LOGS = "docker:index/getLogs:getLogs"
#: terraform-provider-docker's network create waits this long before its first read-back
#: (`networkReadRefreshDelay`): a network is done for the engine no earlier.
NETWORK_READ_DELAY_SECONDS = 2.0

_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000}
_NANOS["h"] = 60 * _NANOS["m"]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def duration_ns(text: str) -> int:
    """Parse a Go/Docker duration such as `3s` or `1m30s` into nanoseconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return int(sum(float(n) * _NANOS[u] for n, u in parts))


def go_duration_string(nanos: int) -> str:
    """Go's `time.Duration.String()` for whole-millisecond values (what the provider writes to state)."""
    if nanos == 0:
        return "0s"
    if nanos < _NANOS["s"]:
        return f"{nanos // _NANOS['ms']}ms" if nanos % _NANOS["ms"] == 0 else f"{nanos}ns"
    hours, rest = divmod(nanos, _NANOS["h"])
    minutes, rest = divmod(rest, _NANOS["m"])
    seconds = rest / _NANOS["s"]
    sec = f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{sec}"
    if minutes:
        return f"{minutes}m{sec}"
    return sec


@dataclass(frozen=True)
class Schema:
    """The diff-relevant part of one resource type's schema."""

    force_new: frozenset[str]
    computed: frozenset[str] = frozenset()
    """Optional+computed: when absent from the inputs, the state's value stands (no diff)."""
    defaults: dict[str, Any] = field(default_factory=dict)
    sets: frozenset[str] = frozenset()
    """Order-free collections."""
    outputs: frozenset[str] = frozenset()
    """Pure outputs, never compared."""
    sensitive: frozenset[str] = frozenset()
    """Outputs the provider's schema marks sensitive: the engine keeps them secret."""


SCHEMAS: dict[str, Schema] = {
    CONTAINER: Schema(
        force_new=frozenset(
            {
                "name",
                "image",
                "envs",
                "entrypoints",
                "command",
                "volumes",
                "networksAdvanced",
                "networkMode",
                "user",
                "ports",
                "stopSignal",
                "stopTimeout",
                "logDriver",
                "logOpts",
                "labels",
                "uploads",
            }
        ),  # fmt: skip
        computed=frozenset(
            {
                "user",
                "envs",
                "entrypoints",
                "command",
                "stopSignal",
                "stopTimeout",
                "logDriver",
                "labels",
                "healthcheck",
            }
        ),  # fmt: skip
        defaults={
            "networkMode": "bridge",
            "restart": "no",
            "wait": False,
            "waitTimeout": 60,
            "rm": False,
            "mustRun": True,
            "start": True,
            "attach": False,
            "logs": False,
            "removeVolumes": True,
        },  # fmt: skip
        # `upload` is a set in the schema; Read never touches it (the state keeps what was declared).
        sets=frozenset({"envs", "volumes", "networksAdvanced", "labels", "uploads"}),
        outputs=frozenset({"exitCode", "networkData", "bridge", "containerLogs"}),
    ),
    VOLUME: Schema(
        force_new=frozenset({"name", "driver", "driverOpts", "labels"}),
        computed=frozenset({"driver", "name"}),
        sets=frozenset({"labels"}),
        outputs=frozenset({"mountpoint"}),
    ),
    NETWORK: Schema(
        force_new=frozenset({"name", "driver", "internal", "labels", "options", "ipamConfigs", "ipv6", "attachable"}),
        computed=frozenset({"driver", "options", "ipamConfigs"}),
        defaults={"internal": False},
        sets=frozenset({"labels"}),
        outputs=frozenset({"scope"}),
    ),
    IMAGE: Schema(
        force_new=frozenset({"name", "pullTriggers", "platform", "build", "triggers"}),
        sets=frozenset({"pullTriggers"}),
        outputs=frozenset({"imageId", "repoDigest"}),
    ),
    RANDOM_PASSWORD: Schema(
        force_new=frozenset(
            {
                "length",
                "special",
                "upper",
                "lower",
                "numeric",
                "keepers",
                "minSpecial",
                "minUpper",
                "minLower",
                "minNumeric",
                "overrideSpecial",
            }
        ),  # fmt: skip
        defaults={"special": True},
        outputs=frozenset({"result", "bcryptHash"}),
        sensitive=frozenset({"result", "bcryptHash"}),
    ),
    RANDOM_BYTES: Schema(
        force_new=frozenset({"length", "keepers"}),
        outputs=frozenset({"base64", "hex"}),
        sensitive=frozenset({"base64", "hex"}),
    ),
    RANDOM_SHUFFLE: Schema(
        force_new=frozenset({"inputs", "keepers", "resultCount", "seed"}),
        outputs=frozenset({"results"}),
    ),
}


def resource_id(typ: str, name: str, outputs: dict[str, Any], fresh_hex: str) -> str:
    """The id the real provider gives a resource (`fresh_hex`: 64 hex characters dockerd would make up).

    pulumi-random: a RandomPassword's is `none`, a RandomShuffle's `-`, a RandomBytes' its base64 and a
    RandomId's its b64_url (the value itself); pulumi-docker: a volume's is its name, a network's and a
    container's dockerd's id, a RemoteImage's the image id followed by its name.
    """
    ids = {
        RANDOM_PASSWORD: lambda: "none",
        RANDOM_SHUFFLE: lambda: "-",
        RANDOM_BYTES: lambda: str(outputs.get("base64", "")),
        RANDOM_ID: lambda: str(outputs.get("b64Url", "")),
        VOLUME: lambda: str(outputs.get("name", name)),
        NETWORK: lambda: fresh_hex,
        CONTAINER: lambda: fresh_hex,
        IMAGE: lambda: f"{outputs.get('imageId', '')}{outputs.get('name', '')}",
    }
    if typ not in ids:
        raise KeyError(f"no id model for {typ}")
    return ids[typ]()


HEALTHCHECK_DEFAULTS = {"interval": "0s", "timeout": "0s", "startPeriod": "0s", "startInterval": "0s", "retries": 0}


def is_empty(value: Any) -> bool:
    """Whether the provider treats a value as unset (Terraform's zero values: null, "", [] and {})."""
    return value is None or value == [] or value == {} or value == ""


def _canonical(value: Any, is_set: bool) -> Any:
    if is_empty(value):
        return None
    if isinstance(value, dict):
        return {k: _canonical(v, False) for k, v in value.items() if not is_empty(v)}
    if isinstance(value, list):
        items = [_canonical(v, False) for v in value]
        if is_set:
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return items
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _healthcheck_state(value: Any) -> Any:
    if is_empty(value):
        return None
    return {**HEALTHCHECK_DEFAULTS, **{k: v for k, v in value.items() if not is_empty(v)}}


def _ports_state(value: Any) -> Any:
    if is_empty(value):
        return None
    return [{"ip": "0.0.0.0", "protocol": "tcp", **{k: v for k, v in p.items() if not is_empty(v)}} for p in value]  # noqa: S104


@dataclass
class Diff:
    """What the provider's diff of one resource says."""

    changed: list[str]
    replace: list[str]


def diff(typ: str, new_inputs: dict[str, Any], state: dict[str, Any]) -> Diff:
    """Diff new inputs against the state the provider holds (its read-back), as the provider does."""
    schema = SCHEMAS.get(typ)
    if schema is None:
        raise KeyError(f"no provider model for {typ}")
    changed: list[str] = []
    keys = (set(new_inputs) | set(schema.defaults) | set(state)) - schema.outputs - {"id"}
    for key in sorted(keys):
        if key in new_inputs:
            new = new_inputs[key]
        elif key in schema.computed:
            continue
        else:
            new = schema.defaults.get(key)
        old = state.get(key, schema.defaults.get(key))
        if key == "healthcheck":
            new, old = _healthcheck_state(new), _healthcheck_state(old)
        if key == "ports":
            new, old = _ports_state(new), _ports_state(old)
        if _canonical(new, key in schema.sets) != _canonical(old, key in schema.sets):
            changed.append(key)
    return Diff(changed=changed, replace=[k for k in changed if k in schema.force_new])


def container_state_from_engine(inputs: dict[str, Any], inspect: dict[str, Any]) -> dict[str, Any]:
    """The state resourceDockerContainerRead writes: inputs, overlaid with what it reads from dockerd."""
    config, host = inspect["Config"], inspect["HostConfig"]
    state = dict(inputs)
    state["name"] = inspect["Name"].lstrip("/")
    image = str(inputs.get("image") or "")
    state["image"] = inspect["Image"] if image.startswith("sha256:") else config.get("Image")
    state["command"] = config.get("Cmd")
    state["entrypoints"] = config.get("Entrypoint")
    state["restart"] = host["RestartPolicy"].get("Name") or "no"
    state["logDriver"] = host["LogConfig"]["Type"]
    # containerLogOptsForState: the merged options when log_opts is configured, else nothing.
    state["logOpts"] = (host["LogConfig"].get("Config") or {}) if inputs.get("logOpts") else None
    state["networkMode"] = host.get("NetworkMode")
    state["stopSignal"] = config.get("StopSignal")
    # Read back always; the schema's diff suppression makes an unset `user` no diff (computed here).
    state["user"] = config.get("User") or None
    state["stopTimeout"] = config.get("StopTimeout")
    running = inspect["State"].get("Running")
    if (running or inputs.get("mustRun", True)) and inputs.get("ports"):
        state["ports"] = [
            {"internal": int(key.split("/")[0]), "external": int(b["HostPort"]), "ip": b["HostIp"],
             "protocol": key.split("/")[1]}
            for key in sorted(inspect["NetworkSettings"].get("Ports") or {}, key=_port_sort_key)
            for b in (inspect["NetworkSettings"]["Ports"][key] or [])
        ]  # fmt: skip
    if not running:
        state["exitCode"] = inspect["State"].get("ExitCode")
        if inputs.get("mustRun", True):
            state["mustRun"] = False  # the provider's way of asking for a restart on the next run
    hc = config.get("Healthcheck")
    if hc:
        state["healthcheck"] = {
            "tests": hc.get("Test"),
            "interval": go_duration_string(hc.get("Interval", 0)),
            "timeout": go_duration_string(hc.get("Timeout", 0)),
            "startPeriod": go_duration_string(hc.get("StartPeriod", 0)),
            "startInterval": go_duration_string(hc.get("StartInterval", 0)),
            "retries": hc.get("Retries", 0),
        }
    return state


def _port_sort_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return int(port), proto


@dataclass(frozen=True)
class DaemonModel:
    """What a dockerd adds to a container on its own (for the read-back simulated under mocks)."""

    default_log_driver: str = "json-file"
    default_log_opts: dict[str, str] = field(default_factory=dict)
    """daemon.json `log-opts`: merged into a container's options when its driver is the default one."""


def container_state_simulated(inputs: dict[str, Any], daemon: DaemonModel) -> dict[str, Any]:
    """The state the provider would read back from `daemon` for a container created from `inputs`."""
    state = dict(inputs)
    driver = inputs.get("logDriver") or daemon.default_log_driver
    state["logDriver"] = driver
    if inputs.get("logOpts"):
        merged = dict(inputs["logOpts"])
        if driver == daemon.default_log_driver:
            for key, value in daemon.default_log_opts.items():
                merged.setdefault(key, value)
        state["logOpts"] = merged
    if inputs.get("networksAdvanced") and not inputs.get("networkMode"):
        state["networkMode"] = "bridge"  # created on the default bridge, then moved to the networks
    hc = inputs.get("healthcheck")
    if hc:
        state["healthcheck"] = {
            **hc,
            **{k: go_duration_string(duration_ns(hc.get(k) or "0s")) for k in ("interval", "timeout", "startPeriod")},
        }
    ports = _ports_state(inputs.get("ports"))
    if ports:
        # dockerd 20.10 lists ports by number and the bindings of one port in the reverse of the order
        # they were declared in (measured).
        by_port: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for port in ports:
            by_port.setdefault((int(port["internal"]), port["protocol"]), []).append(port)
        state["ports"] = [p for key in sorted(by_port) for p in reversed(by_port[key])]
    return state
