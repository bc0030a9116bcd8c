"""Write the configuration table of docs/configuration.md from the `config:` block of Pulumi.yaml.

Usage, in the project directory:

    python3 scripts/config_table.py           # rewrite the table in docs/configuration.md
    python3 scripts/config_table.py --check   # only compare: exit 1 when the file's table is out of date

Pulumi.yaml is the one place each `argusai:` key's type, default and description are written; the table
between the markers `<!-- config-table:start -->` and `<!-- config-table:end -->` is generated from it and
never edited by hand. `tests/test_docs.py` fails when the two differ. Needs Python and PyYAML only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILE = ROOT / "Pulumi.yaml"
DOC_FILE = ROOT / "docs" / "configuration.md"
START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
#: The command that brings the table up to date, as the test prints it.
COMMAND = "python3 scripts/config_table.py"
NAMESPACE = "argusai"

_CODE_SPAN = re.compile(r"(`[^`]*`)")


def load_config(path: Path = PROJECT_FILE) -> dict[str, Mapping[str, Any]]:
    """Return the `config:` block of the project file, in its order: key -> {type, description, default}."""
    declared = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    return {key.split(":", 1)[-1]: decl for key, decl in declared.items()}


def _cell(text: str) -> str:
    """Make text safe in a table cell: `|` escaped, `<` and `>` outside code spans written as entities."""
    parts = _CODE_SPAN.split(" ".join(str(text).split()))
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:  # outside a code span: GitHub would take <name> for an HTML tag
            part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out.append(part.replace("|", "\\|"))
    return "".join(out)


def _type(decl: Mapping[str, Any]) -> str:
    """The declared type; an array names the type of its items."""
    kind = str(decl.get("type", "string"))
    if kind == "array":
        items = (decl.get("items") or {}).get("type")
        return f"array of {items}" if items else "array"
    return kind


def _default(value: Any) -> str:
    """The default as it is written in a stack file, in a code span; an empty string reads `empty`."""
    if value == "":
        return "empty"
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, str):
        shown = value
    else:
        shown = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return f"`{shown}`".replace("|", "\\|")


def render_table(config: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the Markdown table of every key: key, type, default, description."""
    lines = [
        f"| key (`{NAMESPACE}:`) | type | default | description |",
        "|---|---|---|---|",
    ]
    for key, decl in config.items():
        lines.append(
            f"| `{key}` | {_type(decl)} | {_default(decl.get('default'))} | {_cell(decl.get('description', ''))} |"
        )
    return "\n".join(lines) + "\n"


def with_table(document: str, table: str) -> str:
    """Return the document with the text between the two markers replaced by the table."""
    start = document.find(START)
    end = document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START} and {END} are missing or out of order")
    head = document[: start + len(START)]
    return f"{head}\n\n{table}\n{document[end:]}"


def main(argv: list[str]) -> int:
    """Rewrite the table, or with `--check` report whether it is up to date; return the exit status."""
    check = "--check" in argv
    current = DOC_FILE.read_text()
    wanted = with_table(current, render_table(load_config()))
    if current == wanted:
        return 0
    if check:
        print(f"{DOC_FILE.relative_to(ROOT)}: the configuration table is out of date; run: {COMMAND}")
        return 1
    DOC_FILE.write_text(wanted)
    print(f"{DOC_FILE.relative_to(ROOT)}: configuration table written from {PROJECT_FILE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
