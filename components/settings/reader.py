"""The one reader of `pulumi.Config`, and the error every validator raises.

`Reader` turns the string the CLI hands the program for a key (with Pulumi.yaml's default when the stack
sets none) into a typed value or a :class:`ConfigError` naming the key and what is allowed. Pulumi.yaml's
`config:` block is the one place each key's type, description and default are written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import config as runtime_config

NAMESPACE = "argusai"
#: The project file: the CLI hands its defaults to the program as config; reading them here too lets
#: direct callers (tests, tools) get the same values, and the key list is the project file's.
PROJECT_FILE = Path(__file__).resolve().parent.parent.parent / "Pulumi.yaml"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?/)?"  # optional registry host[:port]/
    rf"{_COMPONENT}(?:/{_COMPONENT})*"  # repository path
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"  # optional tag
    r"(?:@sha256:[a-f0-9]{64})?$"  # optional digest
)


class ConfigError(Exception):
    """A config value is missing, of the wrong type or out of range."""

    def __init__(self, key: str, message: str) -> None:
        """Name the full config key (`argusai:<key>`) and what is allowed."""
        self.key = f"{NAMESPACE}:{key}"
        super().__init__(f"config '{self.key}' {message}")


@cache
def config_schema() -> Mapping[str, Mapping[str, Any]]:
    """Return the `config:` block of Pulumi.yaml: key -> {type, description, default}."""
    declared = (yaml.safe_load(PROJECT_FILE.read_text()) or {}).get("config") or {}
    return {key.split(":", 1)[-1]: decl for key, decl in declared.items()}


def known_keys() -> tuple[str, ...]:
    """Every key this program reads; all of them live in the `argusai` namespace."""
    return tuple(config_schema())


def check(key: str, ok: bool, message: str) -> None:
    """Raise ConfigError(key, message) unless `ok`."""
    if not ok:
        raise ConfigError(key, message)


def is_secret(key: str) -> bool:
    """Whether the stack holds `key` as a secret (set with `pulumi config set --secret`)."""
    return runtime_config.is_config_secret(f"{NAMESPACE}:{key}")


def reject_unknown_keys() -> None:
    """A typo (`argusai:databse`) must fail loudly instead of being silently ignored."""
    known = known_keys()
    present: set[str] = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{NAMESPACE}:"
    for full_key in sorted(present):
        if full_key.startswith(prefix) and full_key[len(prefix) :] not in known:
            key = full_key[len(prefix) :]
            raise ConfigError(key, f"is not a known key; known keys: {', '.join(known)}")


class Reader:
    """Reads the `argusai` namespace: values typed, or ConfigErrors; defaults from Pulumi.yaml."""

    def __init__(self, config: pulumi.Config) -> None:
        """Read from `config`."""
        self._config = config

    def raw(self, key: str) -> str | None:
        """The value as the CLI passes it (a string), falling back to Pulumi.yaml's default in the same form."""
        value = self._config.get(key)
        if value is not None:
            return str(value)
        decl = config_schema().get(key)
        if decl is None or "default" not in decl:
            return None
        default = decl["default"]
        if isinstance(default, bool):
            return "true" if default else "false"
        if isinstance(default, (list, dict)):
            return json.dumps(default)
        return str(default)

    def string(self, key: str, *, allow_empty: bool = False) -> str:
        """A string; empty only when allowed."""
        value = self.raw(key) or ""
        if not allow_empty and not value.strip():
            raise ConfigError(key, "must not be empty")
        return value

    def stripped(self, key: str) -> str:
        """A string that may be empty, without surrounding white space."""
        return (self.raw(key) or "").strip()

    def choice(self, key: str, allowed: tuple[str, ...], *, fold: Callable[[str], str]) -> str:
        """One of `allowed`, after `fold` (case)."""
        value = fold(self.string(key))
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(allowed)}; got '{value}'")
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        """An integer in [low, high]."""
        value = self.raw(key) or ""
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise ConfigError(key, f"must be an integer from {low} to {high}; got '{value}'") from None
        if not low <= number <= high:
            raise ConfigError(key, f"must be an integer from {low} to {high}; got {number}")
        return number

    def boolean(self, key: str) -> bool:
        """Either true or false."""
        value = self.raw(key) or ""
        folded = value.strip().lower()
        if folded not in ("true", "false"):
            raise ConfigError(key, f"must be true or false; got '{value}'")
        return folded == "true"

    def string_list(self, key: str) -> list[str]:
        """A list of strings (the CLI passes it as JSON)."""
        raw = self.raw(key)
        try:
            value = [] if raw is None else json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(key, 'must be a list of strings, e.g. ["NAME=value"]')
        return value

    def integer_list(self, key: str, low: int, high: int) -> list[int]:
        """A list of integers in [low, high] (the CLI passes it as JSON)."""
        raw = self.raw(key)
        try:
            value = [] if raw is None else json.loads(raw)
        except json.JSONDecodeError:
            value = None
        ok = isinstance(value, list) and all(type(item) is int and low <= item <= high for item in value)
        if not ok:
            raise ConfigError(key, f"must be a list of integers from {low} to {high}, e.g. [17]; got {raw}")
        return value

    def image(self, key: str, *, allow_empty: bool = False) -> str:
        """An image reference (`name:tag`, a registry host, a digest); empty only when allowed."""
        value = self.string(key, allow_empty=allow_empty).strip()
        if allow_empty and not value:
            return value
        check(key, bool(_IMAGE_REF.match(value)), f"must be an image reference like 'name:tag'; got '{value}'")
        return value

    def secret(self, key: str, validate: Callable[[str], str | None]) -> pulumi.Output[str] | None:
        """An optional secret: empty or unset means "generate one". Never echoes the value."""
        value = self.raw(key)
        if value is None or value == "":
            return None
        problem = validate(value)
        if problem:
            raise ConfigError(key, problem)
        return pulumi.Output.secret(value)
