"""The report: the lines the move prints and writes to MOVE_REPORT, masked, and the texts of its refusals."""

from __future__ import annotations

import os
import sys

from .common import PREFIX

#: Shorter secrets are not masked in free text (masking every "a" would garble the report).
MIN_MASKED_SECRET_CHARS = 4


class Report:
    """The lines the script prints (stdout, failures on stderr), masked, kept for MOVE_REPORT."""

    def __init__(self, path: str = "") -> None:
        """Start with no line and nothing to mask; `path` is MOVE_REPORT (empty: none)."""
        self.lines: list[str] = []
        self.secrets: list[str] = []
        self.path = path
        self.written = False

    def mask(self, *secrets: str | None) -> None:
        """Never print these (passwords of the URLs)."""
        from urllib.parse import quote

        for secret in secrets:
            if secret and len(secret) >= MIN_MASKED_SECRET_CHARS:
                self.secrets.extend({secret, quote(secret, safe="")})

    def clean(self, text: str) -> str:
        """The text with every known secret replaced by ***."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def line(self, message: str, *, error: bool = False) -> None:
        """Print one `data-move:` line."""
        text = self.clean(f"{PREFIX}: {message}")
        self.lines.append(text)
        print(text, file=sys.stderr if error else sys.stdout, flush=True)

    def write(self) -> None:
        """Write every line to MOVE_REPORT, once (a temporary name, then renamed); a failure is only noted."""
        if not self.path or self.written:
            return
        self.written = True
        partial = f"{self.path}.partial"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(partial, "w", encoding="utf-8") as handle:
                handle.write("\n".join(self.lines) + "\n")
            os.replace(partial, self.path)
        except OSError as exc:
            print(f"{PREFIX}: could not write MOVE_REPORT {self.path}: {exc}", file=sys.stderr, flush=True)


def masked(url: str) -> str:
    """The URL without its password (and without query options, which may name files or keys)."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    return parsed.set(query={}).render_as_string(hide_password=True)


def how_to_proceed(source_kind: str, target_kind: str) -> str:
    """The two ways on after a refusal."""
    keep = (
        f"To keep the {target_kind} data, move the SQLite file aside (e.g. rename app.db) so there is nothing to move"
        if source_kind == "SQLite"
        else f"To keep the {target_kind} data, do not move again"
    )
    return f"{keep}; to move again, back up the {target_kind} database and empty it (then run the schema gate on it)."


def format_counts(counts: dict[str, int]) -> str:
    """`table: rows, ...` of the tables with rows."""
    return ", ".join(f"{name}: {count}" for name, count in counts.items() if count)
