"""The Pulumi engine's plan between a stack's state and what a new run of the program declared.

A :class:`State` is what the engine keeps between runs: per resource (keyed by URN) its inputs, the
outputs its provider read back, its options and any init errors. :func:`plan` compares a new
:class:`~testkit.harness.Deployment` with it the way the engine's step generator does: create what is
new; for what exists, ask the provider model for a diff (force-new fields replace); apply
`replaceOnChanges` (with `"*"`, a resource whose last create failed is replaced even with no diff,
otherwise the engine issues an empty update that clears the error); refuse to replace or delete a
protected resource; drop a `retainOnDelete` one from the state without deleting it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from testkit import provider

Op = Literal["same", "create", "update", "replace", "delete", "forget"]
#: Types the engine reads instead of managing (nothing to plan).
READ_ONLY = {provider.STACK_REFERENCE}


@dataclass(kw_only=True)
class Options:
    """The resource options the engine acts on, as a registration sends them and the state keeps them."""

    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    """Top-level inputs whose new value the engine replaces with the state's (removes, when absent there)."""
    additional_secret_outputs: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)

    def copy_options(self, other: Options) -> None:
        """Take `other`'s options (the engine saves the options of the latest registration)."""
        for option in fields(Options):
            setattr(self, option.name, copy.copy(getattr(other, option.name)))


@dataclass
class ResourceState(Options):
    """One resource as the engine keeps it after a run."""

    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    init_errors: list[str] = field(default_factory=list)
    generation: int = 0
    """How many times it was (re)created: stands in for a provider's fresh random values."""
    id: str = ""
    """The id its provider gave it (never encrypted by the engine)."""
    secret_paths: list[str] = field(default_factory=list)
    """Where the engine keeps a secret: `inputs/<key>/...` and `outputs/<key>/...` (`/`-separated paths)."""


@dataclass
class State:
    """A stack's state: resources by URN, in creation order, and its last outputs."""

    resources: dict[str, ResourceState] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    """How many times the stack was destroyed: a new lifetime gets new random values."""

    def to_json(self) -> str:
        """The state as JSON (a snapshot of a stack, e.g. as an earlier version of the program left it)."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> State:
        """A state saved with :meth:`to_json`."""
        data = json.loads(text)
        resources = {urn: ResourceState(**record) for urn, record in data["resources"].items()}
        return cls(resources=resources, outputs=data["outputs"], epoch=data["epoch"])

    def by_name(self, typ: str, name: str) -> ResourceState | None:
        """The resource of this type and logical name (they are unique in this program)."""
        return next((r for r in self.resources.values() if r.type == typ and r.name == name), None)


@dataclass
class Step:
    """One step of a plan."""

    op: Op
    urn: str
    type: str
    name: str
    keys: list[str] = field(default_factory=list)
    """The fields whose change decided the step (`#initerror` for a failed create)."""

    def __str__(self) -> str:
        """`replace backend-container (image)`."""
        return f"{self.op} {self.name}" + (f" ({', '.join(self.keys)})" if self.keys else "")


class PlanError(Exception):
    """The engine would refuse the update (a protected resource to delete or replace)."""


@dataclass
class Plan:
    """The steps of one update, and what the engine would refuse."""

    steps: list[Step]
    refusals: list[str]

    def ops(self, *ops: Op) -> list[Step]:
        """Steps of these kinds."""
        return [s for s in self.steps if s.op in ops]

    @property
    def changes(self) -> list[Step]:
        """Everything but `same`."""
        return [s for s in self.steps if s.op != "same"]

    def check(self) -> Plan:
        """Raise PlanError as `pulumi up` would fail; return self otherwise."""
        if self.refusals:
            raise PlanError("; ".join(self.refusals))
        return self

    def summary(self) -> list[str]:
        """One line per change."""
        return [str(s) for s in self.changes]


def ignoring_changes(inputs: dict[str, Any], old_inputs: dict[str, Any], ignore_changes: list[str]) -> dict[str, Any]:
    """The inputs the engine diffs and saves: each ignored key as the state has it (gone, when it has none)."""
    processed = dict(inputs)
    for key in ignore_changes:
        if key in old_inputs:
            processed[key] = old_inputs[key]
        else:
            processed.pop(key, None)
    return processed


def resource_diff(
    old: ResourceState,
    typ: str,
    inputs: dict[str, Any],
    replace_on_changes: list[str],
    ignore_changes: Sequence[str] = (),
) -> Step:
    """The step for an existing resource, as the engine's step generator decides it."""
    found = provider.diff(typ, ignoring_changes(inputs, old.inputs, list(ignore_changes)), old.outputs)
    replace = list(found.replace)
    if replace_on_changes:
        if "*" in replace_on_changes:
            replace += [k for k in found.changed if k not in replace]
        else:
            replace += [k for k in found.changed if k in replace_on_changes and k not in replace]
    if old.init_errors and "*" in replace_on_changes and not replace:
        replace = ["#initerror"]
    if replace:
        return Step("replace", old.urn, typ, old.name, replace)
    if found.changed or old.init_errors:
        return Step("update", old.urn, typ, old.name, found.changed or ["#initerror"])
    return Step("same", old.urn, typ, old.name)


def plan(state: State, deployment: Any) -> Plan:
    """What `pulumi up` would do to `state` for a run of the program that declared `deployment`."""
    steps: list[Step] = []
    refusals: list[str] = []
    declared = set()
    for reg in deployment.registrations:
        if reg.type.startswith("argusai:") or reg.type in READ_ONLY:
            continue
        declared.add(reg.urn)
        old = state.resources.get(reg.urn)
        if old is None:
            steps.append(Step("create", reg.urn, reg.type, reg.name))
            continue
        step = resource_diff(old, reg.type, reg.plain_inputs(), reg.replace_on_changes, reg.ignore_changes)
        if step.op == "replace" and old.protect:
            keys = ", ".join(step.keys)
            refusals.append(f"unable to replace resource {reg.urn}: it is marked for protection ({keys})")
        steps.append(step)
    for urn, old in reversed(list(state.resources.items())):
        if urn in declared or old.type in READ_ONLY:
            continue
        if old.protect:
            refusals.append(f"unable to delete resource {urn}: it is marked for protection")
        steps.append(Step("forget" if old.retain_on_delete else "delete", urn, old.type, old.name))
    return Plan(steps, refusals)
