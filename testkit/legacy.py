"""Stacks from before: what `scripts/keys_out_of_ids.py` does to one's state, with the script's own code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from testkit import plan as planning
from testkit.export import stack_export
from testkit.harness import PROJECT

COMMAND = Path(__file__).resolve().parent.parent / "scripts" / "keys_out_of_ids.py"


def command() -> ModuleType:
    """The script as a module (it lives among the operator's scripts, not in a package)."""
    spec = importlib.util.spec_from_file_location("keys_out_of_ids", COMMAND)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def after_the_command(state: planning.State, stack: str) -> tuple[planning.State, dict[str, str]]:
    """What the script leaves: the state without the old generators, and their keys as the stack's config."""
    script = command()
    generators = script.old_generators(stack_export(state, stack, PROJECT, plaintext=True))
    gone = {g.urn for g in generators}
    kept = planning.State(outputs=state.outputs, epoch=state.epoch)
    for urn, record in state.resources.items():
        if urn not in gone:
            record.dependencies = [d for d in record.dependencies if d not in gone]
            kept.resources[urn] = record
    return kept, {g.key: g.value for g in generators}
