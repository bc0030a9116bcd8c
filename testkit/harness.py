"""Runs the real `__main__.py` under Pulumi's mocks, with config layered the way the CLI layers it.

Layers, later ones winning: the `config:` defaults of Pulumi.yaml, then `Pulumi.<stack>.yaml`, then the
test's overrides. Values reach the program as the CLI hands them over: strings, with booleans as
`true`/`false` and arrays as JSON. Every resource registration is recorded with its inputs (secret markers
kept) and its options (protect, retain-on-delete, delete-before-replace, replace-on-changes,
dependencies), and the stack's exports are resolved with their secrecy.

Given the stack's :class:`~testkit.plan.State` from a previous run, the mocks answer as the engine does:
a resource whose diff is empty or an update gets its old outputs back (a generated secret stays, an image
keeps its id), a created or replaced one gets fresh ones, and the stack reference to this same stack
reads the previous run's outputs. :func:`commit` then turns a run into the next state.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import runpy
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from testkit import plan as planning
from testkit import provider
from testkit.provider import CONTAINER, IMAGE, NETWORK, VOLUME

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "__main__.py"
PROJECT = "argusai"
NAMESPACE = "argusai"
#: An upload that is a zip of scripts (components/scripts: `Script.bundle`).
ZIP_SUFFIX = ".zip"


class StackConfigError(Exception):
    """A stack file holds something the harness cannot hand to the program (an encrypted value)."""


def _as_config_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _full_key(key: str) -> str:
    return key if ":" in key else f"{NAMESPACE}:{key}"


def project_file() -> dict[str, Any]:
    """Return the parsed Pulumi.yaml."""
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def layered_config(
    stack: str, overrides: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Return (config, secret keys) as the CLI would pass them for `stack` plus overrides."""
    config: dict[str, str] = {}
    for key, decl in (project_file().get("config") or {}).items():
        if isinstance(decl, Mapping) and "default" in decl:
            config[_full_key(key)] = _as_config_string(decl["default"])
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        for key, value in ((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}).items():
            if isinstance(value, Mapping) and "secure" in value:
                raise StackConfigError(f"{stack_file.name}: {key} is encrypted; pass it as a test secret")
            config[_full_key(key)] = _as_config_string(value)
    for key, value in (overrides or {}).items():
        config[_full_key(key)] = _as_config_string(value)
    secret_keys = []
    for key, value in (secrets or {}).items():
        config[_full_key(key)] = _as_config_string(value)
        secret_keys.append(_full_key(key))
    return config, secret_keys


def fake_digest(*parts: str) -> str:
    """Return a stable sha256 hex digest of the parts, standing in for values an engine would compute."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass
class Registration(planning.Options):
    """One resource the program declared."""

    type: str
    name: str
    inputs: dict[str, Any]
    parent: str = ""
    urn: str = ""
    id: str = ""
    """The id the (mock) provider gave, as the real one would."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the (mock) provider answered: inputs plus computed outputs, secret markers removed."""
    wire_outputs: dict[str, Any] = field(default_factory=dict)
    """The same, secret markers kept."""
    before_create: list[str] = field(default_factory=list)
    """The names of the resource hooks the engine calls before creating it (`Deployment.hooks`)."""

    def plain_inputs(self) -> dict[str, Any]:
        """Every input with secret markers removed."""
        return {key: unwrap(value) for key, value in self.inputs.items()}

    def saved_inputs(self, old: planning.ResourceState | None) -> dict[str, Any]:
        """The inputs the engine saves: those it ignores changes of stay as `old` has them."""
        inputs = self.plain_inputs()
        return planning.ignoring_changes(inputs, old.inputs, self.ignore_changes) if old is not None else inputs

    def plain(self, key: str) -> Any:
        """Return an input with every secret marker removed."""
        return unwrap(self.inputs.get(key))

    def env(self) -> dict[str, str]:
        """Return a container's `envs` as NAME -> value, secret markers removed."""
        return dict(item.split("=", 1) for item in self.plain("envs") or [])

    def is_secret(self, key: str) -> bool:
        """Whether the input is (or contains) a secret."""
        return contains_secret(self.inputs.get(key))

    def uploaded(self) -> dict[str, str]:
        """A container's uploads: path in the container -> text.

        Given as content, or read from the project file at `source` as the provider reads it (relative to the
        project's directory). A zip (scripts of several files, imported from it) gives each file it holds,
        as `<zip's path>/<file>`.
        """
        files: dict[str, str] = {}
        for upload in self.plain("uploads") or []:
            if "content" in upload:
                files[upload["file"]] = upload["content"]
            elif upload["file"].endswith(ZIP_SUFFIX):
                with zipfile.ZipFile(ROOT / upload["source"]) as archive:
                    for name in archive.namelist():
                        files[f"{upload['file']}/{name}"] = archive.read(name).decode()
            else:
                files[upload["file"]] = (ROOT / upload["source"]).read_text()
        return files


def unwrap(value: Any) -> Any:
    """Remove secret markers from a deserialized property value."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


def contains_secret(value: Any) -> bool:
    """Whether a deserialized property value is or holds a secret."""
    if rpc.is_rpc_secret(value):
        return True
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    return False


class CheckpointMidWrite(Exception):
    """The backend's answer to a read of the checkpoint that the running `up` is writing."""


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers registrations the way the providers and the engine would, deterministically per stack and name."""

    def __init__(
        self,
        stack: str,
        preview: bool,
        image_ids: Callable[[str], str] | None = None,
        prior: planning.State | None = None,
        registry_digests: Callable[[str], str] | None = None,
    ) -> None:
        """Outputs derive from the stack, the resource name and its generation, so a re-run is stable.

        `image_ids` maps an image name to its id (the real-engine tests pass the engine's answer, pulling
        what is missing as the provider's create does); `registry_digests` answers `getRegistryImage`
        (the real-engine tests ask a registry on loopback); `prior` is the state of the previous run.
        """
        self.stack = stack
        self.preview = preview
        self.image_ids = image_ids or (lambda ref: "sha256:" + fake_digest(ref))
        self.registry_digests = registry_digests or (lambda ref: "sha256:" + fake_digest("registry", ref))
        self.prior = prior or planning.State()
        self.generations: dict[tuple[str, str], int] = {}
        self.ignore_changes: dict[tuple[str, str], list[str]] = {}
        """(type, name) -> the registration's `ignoreChanges` (the monitor records them: registrations come
        from several threads at once)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Return (id, state): the inputs plus the outputs each provider computes."""
        state = dict(args.inputs)
        if args.typ == provider.STACK_REFERENCE:
            if str(args.inputs.get("name", "")).split("/")[-1] == self.stack:
                # The same `up` is writing this checkpoint: a backend's read can observe the write in
                # progress (the file backend answers EOF), so a program must never read its own.
                raise CheckpointMidWrite(f"StackReference {args.name}: failed to load checkpoint: EOF")
            outputs = self.prior.outputs
            secret = [k for k, v in outputs.items() if rpc.is_rpc_secret(v)]
            return args.name, {"name": args.inputs.get("name"), "outputs": outputs, "secretOutputNames": secret}
        old = self.prior.by_name(args.typ, args.name)
        generation = 0
        ignore = self.ignore_changes.get((args.typ, args.name), [])
        if old is not None:
            plain = {k: unwrap(v) for k, v in args.inputs.items()}
            step = planning.resource_diff(old, args.typ, plain, [], ignore)
            if step.op in ("same", "update"):
                self.generations[(args.typ, args.name)] = old.generation
                # The engine hands the program the outputs it holds; inputs of an update are the new ones,
                # but for those it ignores, which stay as the state has them.
                kept = {k: v for k, v in old.outputs.items() if k in provider.SCHEMAS[args.typ].outputs}
                processed = planning.ignoring_changes(state, old.inputs, ignore)
                return old.id or self._id(args, processed, generation=old.generation), {**processed, **kept}
            generation = old.generation + 1
        self.generations[(args.typ, args.name)] = generation
        seed = fake_digest(self.stack, args.typ, args.name, str(self.prior.epoch), str(generation))
        if self.preview and args.typ.startswith("random:"):
            # Generated values are unknown until `up`: return no outputs, as the engine does in a preview.
            return "", state
        if args.typ == provider.RANDOM_PASSWORD:
            state["result"] = rpc.wrap_rpc_secret(seed[: int(args.inputs.get("length", 16))])
        elif args.typ == provider.RANDOM_BYTES:
            raw = bytes.fromhex(seed)[: int(args.inputs["length"])]
            state["base64"] = rpc.wrap_rpc_secret(base64.b64encode(raw).decode())
            state["hex"] = rpc.wrap_rpc_secret(raw.hex())
        elif args.typ == provider.RANDOM_SHUFFLE:
            # One result per input, in order: shuffling is beside the point of what the program uses.
            items = list(unwrap(args.inputs["inputs"]))
            results = items[: int(args.inputs.get("resultCount") or len(items))]
            state["results"] = rpc.wrap_rpc_secret(results) if contains_secret(args.inputs["inputs"]) else results
        elif args.typ == IMAGE:
            if self.preview:
                return "", state
            state["imageId"] = self.image_ids(str(args.inputs["name"]))
            state["repoDigest"] = ""
        return self._id(args, state, generation), state

    def _id(self, args: pulumi.runtime.MockResourceArgs, state: dict[str, Any], generation: int) -> str:
        """The id the real provider gives (dockerd's ids made up, stable per stack, name and generation)."""
        if not args.custom:
            return ""  # a component has no id
        fresh = fake_digest("id", self.stack, args.typ, args.name, str(self.prior.epoch), str(generation))
        return provider.resource_id(args.typ, args.name, unwrap(state), fresh)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Answer the invokes the program makes; any other is a surprise.

        `getRegistryImage`: the registry's digest. `getNetwork` and `getLogs` read the Docker host, which holds
        what the previous run's state holds: a network or container of that name, or a failed invoke for
        one that is not there.
        """
        name = str(args.args.get("name"))
        if args.token == provider.GET_REGISTRY_IMAGE:
            return {"id": name, "name": name, "sha256Digest": self.registry_digests(name)}, []
        kinds = {provider.GET_NETWORK: NETWORK, provider.GET_LOGS: CONTAINER}
        if args.token in kinds:
            found = [
                r for r in self.prior.resources.values() if r.type == kinds[args.token] and r.inputs.get("name") == name
            ]
            if not found:
                # What the program sees of the provider's "No such object": the invoke fails.
                return {}, [("name", f"Error: No such object: {name}")]
            return {"id": found[0].id or name, "name": name}, []
        raise NotImplementedError(f"unexpected invoke {args.token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also records each registration's resource options."""

    def __init__(self, mocks: RecordingMocks) -> None:
        """Start with no registrations."""
        super().__init__(mocks)
        self.mocks: RecordingMocks = mocks
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        """Record the request, then answer as the stock mock monitor does."""
        self.mocks.ignore_changes[(request.type, request.name)] = list(request.ignoreChanges)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    inputs=rpc.deserialize_properties(request.object),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    replace_on_changes=list(request.replaceOnChanges),
                    ignore_changes=list(request.ignoreChanges),
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    dependencies=list(request.dependencies),
                    parent=request.parent,
                    urn=response.urn,
                    id=response.id,
                    wire_outputs=rpc.deserialize_properties(response.object),
                    outputs=unwrap(rpc.deserialize_properties(response.object)),
                    before_create=list(request.hooks.before_create),
                )
            )
        return response


class RecordingCallbacks:
    """Stands in for the SDK's callback server: keeps the program's resource hooks by name.

    The real engine calls a hook through that server; the applier calls it here, at the same point.
    """

    def __init__(self) -> None:
        """No hook yet."""
        self.hooks: dict[str, pulumi.ResourceHook] = {}

    def register_resource_hook(self, hook: pulumi.ResourceHook) -> None:
        """Keep the hook (names are unique in a program, as the engine requires)."""
        assert hook.name not in self.hooks, f"resource hook {hook.name} registered twice"  # noqa: S101
        self.hooks[hook.name] = hook


def _start_recording(
    mocks: RecordingMocks, stack: str, preview: bool, config: dict[str, Any], secret_keys: list[str]
) -> tuple[RecordingMonitor, RecordingCallbacks]:
    """Point the SDK at the kit's monitor and callbacks, for one run."""
    monitor = RecordingMonitor(mocks)
    callbacks = RecordingCallbacks()
    _plain_reports()
    pulumi.runtime.settings.reset_options()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.settings.SETTINGS.callbacks = callbacks  # type: ignore[assignment]
    pulumi.runtime.set_all_config(config, secret_keys)
    return monitor, callbacks


@dataclass
class Output:
    """A resolved stack export."""

    value: Any
    secret: bool
    known: bool


@dataclass
class Deployment:
    """What one run of the program declared."""

    stack: str
    registrations: list[Registration]
    outputs: dict[str, Output]
    generations: dict[tuple[str, str], int] = field(default_factory=dict)
    """(type, name) -> generation of each resource's outputs (0 = first create)."""
    raw_outputs: dict[str, Any] = field(default_factory=dict)
    """The stack outputs in the engine's form (secrets wrapped), as the next run's stack reference reads them."""
    hooks: dict[str, pulumi.ResourceHook] = field(default_factory=dict)
    """The program's resource hooks by name (each registration's `before_create` names some)."""

    def of_type(self, typ: str) -> list[Registration]:
        """Return the registrations of one resource type, e.g. `docker:index/container:Container`."""
        return [r for r in self.registrations if r.type == typ]

    def named(self, name: str) -> Registration:
        """Return the registration with this logical name."""
        matches = [r for r in self.registrations if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"  # noqa: S101
        return matches[0]

    def container(self, role: str) -> Registration:
        """Return the container whose role label is `role`."""
        return _by_role(self.of_type(CONTAINER), role)

    def volume(self, role: str) -> Registration:
        """Return the volume whose role label is `role`."""
        return _by_role(self.of_type(VOLUME), role)

    def network(self, role: str) -> Registration:
        """Return the network whose role label is `role`."""
        return _by_role(self.of_type(NETWORK), role)


def labels_of(registration: Registration) -> dict[str, str]:
    """Return a Docker resource's labels as a dict."""
    return {item["label"]: item["value"] for item in registration.plain("labels") or []}


def _by_role(registrations: list[Registration], role: str) -> Registration:
    matches = [r for r in registrations if labels_of(r).get("argusai.role") == role]
    assert len(matches) == 1, f"expected one resource with role {role}, found {len(matches)}"  # noqa: S101
    return matches[0]


#: The last of asyncio's reports of a future whose error nobody read, one line each (see `_plain_reports`).
UNREAD_ERRORS: collections.deque[str] = collections.deque(maxlen=100)
UNREAD = "exception was never retrieved"


def _report_unread_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if UNREAD in str(context.get("message", "")) and "exception" in context:
        UNREAD_ERRORS.append(f"{context['message']}: {context['exception']!r}")
        return
    loop.default_exception_handler(context)


def _plain_reports() -> None:
    """Make the runs' event loop report a future's unread error as one line, without its traceback.

    A failed run leaves futures holding its error (the run has raised it already), and asyncio reports
    each from the future's finalizer: wherever the garbage collector happens to run. Python 3.11 formats
    a traceback with `ast.parse` (for its ^^^ marks); nested inside another parse (a test reading
    source, pytest rewriting a module) it breaks that one: "AST constructor recursion depth mismatch".
    """
    loop = _ensure_event_loop()
    if loop.get_exception_handler() is not _report_unread_error:
        loop.set_exception_handler(_report_unread_error)


def run_program(
    stack: str = "dev",
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
    *,
    preview: bool = False,
    image_ids: Callable[[str], str] | None = None,
    prior: planning.State | None = None,
    registry_digests: Callable[[str], str] | None = None,
) -> Deployment:
    """Run __main__.py once under mocks and return what it declared and exported.

    With `prior` (the state after an earlier run of the same stack) the run sees what the engine would
    hand it: old outputs for unchanged resources, the previous stack outputs through its reference.
    """
    config, secret_keys = layered_config(stack, overrides, secrets)
    mocks = RecordingMocks(stack, preview, image_ids, prior, registry_digests)
    monitor, callbacks = _start_recording(mocks, stack, preview, config, secret_keys)
    try:
        runpy.run_path(str(MAIN), run_name="__main__")
        _sync_await(wait_for_rpcs())
    except Exception as exc:
        # Let tests assert that nothing was declared before the failure.
        exc.registrations = monitor.registrations  # type: ignore[attr-defined]
        raise
    root = get_root_resource()
    outputs = {name: resolve(pulumi.Output.from_input(value)) for name, value in (root.outputs if root else {}).items()}
    raw = {name: rpc.wrap_rpc_secret(o.value) if o.secret else o.value for name, o in outputs.items() if o.known}
    return Deployment(
        stack=stack,
        registrations=monitor.registrations,
        outputs=outputs,
        generations=dict(mocks.generations),
        raw_outputs=raw,
        hooks=callbacks.hooks,
    )


def run_components(build: Callable[[], Any], stack: str = "unit", *, preview: bool = False) -> tuple[Any, Deployment]:
    """Call `build` (which declares components with args passed straight in) under mocks."""
    mocks = RecordingMocks(stack, preview)
    monitor, callbacks = _start_recording(mocks, stack, preview, {}, [])
    result = build()
    _sync_await(wait_for_rpcs())
    return result, Deployment(stack=stack, registrations=monitor.registrations, outputs={}, hooks=callbacks.hooks)


def resolve(output: pulumi.Output[Any]) -> Output:
    """Resolve an Output created under mocks, with its secrecy."""
    return Output(
        value=_sync_await(output.future()),
        secret=_sync_await(output.is_secret()),
        known=_sync_await(output.is_known()),
    )


def commit(
    deployment: Deployment,
    prior: planning.State | None = None,
    daemon: provider.DaemonModel | None = None,
    failed: set[str] = frozenset(),  # type: ignore[assignment]
) -> planning.State:
    """The state after `pulumi up` applied `deployment` (under mocks: read-back simulated for `daemon`).

    Raises PlanError as `pulumi up` would. Containers named in `failed` end with an init error (their
    `wait` timed out): they stay in the state, as the provider stores a container before it waits.
    """
    prior = prior or planning.State()
    steps = planning.plan(prior, deployment).check()
    daemon = daemon or provider.DaemonModel()
    state = planning.State(outputs=dict(deployment.raw_outputs), epoch=prior.epoch)
    by_urn = {r.urn: r for r in deployment.registrations}
    for step in steps.steps:
        if step.op in ("delete", "forget"):
            continue
        reg = by_urn[step.urn]
        old = prior.resources.get(step.urn)
        inputs = reg.saved_inputs(old)
        if step.op == "same" and old is not None:
            outputs = old.outputs
        elif reg.type == CONTAINER:
            outputs = provider.container_state_simulated(inputs, daemon)
            if step.op == "update" and old is not None:
                # Update changes nothing on the container; what the provider reads back stays as it was.
                outputs = {**provider.container_state_simulated(inputs, daemon), **_read_back_only(old.outputs)}
        else:
            outputs = reg.outputs
        errors = [f"{reg.plain('name')} failed to be in healthy state"] if reg.plain("name") in failed else []
        record = planning.ResourceState(
            urn=reg.urn,
            type=reg.type,
            name=reg.name,
            inputs=inputs,
            outputs=outputs,
            init_errors=errors,
            generation=deployment.generations.get((reg.type, reg.name), 0),
            id=reg.id,
            secret_paths=secret_paths(reg, outputs),
        )
        record.copy_options(reg)
        state.resources[step.urn] = record
    return state


def _marked(value: Any, path: str) -> list[str]:
    """The `/`-separated paths under `path` of the values marked secret."""
    if rpc.is_rpc_secret(value):
        return [path]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _marked(item, f"{path}/{key}")]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _marked(item, f"{path}/{index}")]
    return []


def _has_path(value: Any, parts: list[str]) -> bool:
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False
    return True


def secret_paths(reg: Registration, outputs: dict[str, Any]) -> list[str]:
    """Where the engine keeps this resource's secrets.

    Its inputs marked secret, the outputs at the same place (the engine marks them so), the outputs its
    provider's schema calls sensitive and its `additionalSecretOutputs`.
    """
    marked = _marked(reg.inputs, "")
    out = {p for p in marked if _has_path(outputs, p.strip("/").split("/"))}
    schema = provider.SCHEMAS.get(reg.type)
    named = set(reg.additional_secret_outputs) | set(schema.sensitive if schema else ())
    out |= {f"/{key}" for key in named if key in outputs}
    return [f"inputs{p}" for p in marked] + [f"outputs{p}" for p in sorted(out)]


def _read_back_only(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: outputs[k] for k in ("healthcheck", "logOpts", "ports") if k in outputs}
