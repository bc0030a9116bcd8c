"""The documentation: the configuration table is the one Pulumi.yaml makes, and every relative link resolves."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _config_table() -> ModuleType:
    """Load scripts/config_table.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("config_table", ROOT / "scripts" / "config_table.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a fenced block's lines are replaced by empty ones)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped, each space a '-'."""
    text = _INLINE_LINK.sub(r"\1", heading)
    text = _CODE_SPAN.sub(lambda m: m.group(2), text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose_lines(path.read_text()):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    """Every link of a Markdown file that is not a URL with a scheme: (line number, target)."""
    links = []
    for number, line in enumerate(_prose_lines(path.read_text()), start=1):
        prose = _CODE_SPAN.sub(lambda m: "x" * len(m.group(0)) if "](" in m.group(0) else m.group(0), line)
        for match in _LINK.finditer(prose):
            target = match.group(1)
            if target and not _SCHEME.match(target):
                links.append((number, target))
    return links


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `path` whose file or heading does not exist, as `file:line: target (why)`."""
    problems = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(root)}:{number}: {target}"
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{where} (no such file)")
            continue
        if root not in linked.parents and linked != root:
            problems.append(f"{where} (outside the project)")
            continue
        if not anchor:
            continue
        if linked.suffix != ".md":
            problems.append(f"{where} (an anchor into a file that is not Markdown)")
        elif anchor not in anchors(linked):
            problems.append(f"{where} (no heading with that anchor in {linked.relative_to(root)})")
    return problems


def test_configuration_table_is_generated_from_pulumi_yaml() -> None:
    script = _config_table()
    current = script.DOC_FILE.read_text()
    wanted = script.with_table(current, script.render_table(script.load_config()))
    if current != wanted:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                "docs/configuration.md",
                "generated from Pulumi.yaml",
                n=0,
            )
        )
        pytest.fail(f"the configuration table differs from Pulumi.yaml; run: {script.COMMAND}\n{diff}")


def test_configuration_table_lists_every_key_once() -> None:
    script = _config_table()
    table = script.DOC_FILE.read_text().split(script.START, 1)[1].split(script.END, 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    keys = [row.split("`")[1] for row in rows]
    assert keys == list(script.load_config())
    assert "postgresDriver" in keys


def test_render_table_escapes_what_markdown_would_eat() -> None:
    script = _config_table()
    table = script.render_table(
        {
            "sample": {"type": "string", "default": "", "description": "a|b <name> `x|<y>`"},
            "items": {"type": "array", "items": {"type": "string"}, "default": [], "description": "list"},
            "flag": {"type": "boolean", "default": True, "description": "on"},
        }
    )
    assert r"| `sample` | string | empty | a\|b &lt;name&gt; `x\|<y>` |" in table
    assert "| `items` | array of string | `[]` | list |" in table
    assert "| `flag` | boolean | `true` | on |" in table


def test_with_table_needs_both_markers() -> None:
    script = _config_table()
    with pytest.raises(ValueError, match="markers"):
        script.with_table("no markers here", "| table |\n")
    document = f"before\n{script.START}\nold\n{script.END}\nafter\n"
    assert script.with_table(document, "| new |\n") == f"before\n{script.START}\n\n| new |\n\n{script.END}\nafter\n"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What `pulumi destroy` keeps, and why", "what-pulumi-destroy-keeps-and-why"),
        ("Growing past SQLite: moving the data into PostgreSQL", "growing-past-sqlite-moving-the-data-into-postgresql"),
        (
            "A PostgreSQL server kept elsewhere (`database: external`)",
            "a-postgresql-server-kept-elsewhere-database-external",
        ),
        ("Moving a stack's data", "moving-a-stacks-data"),
        ("IPv4 and IPv6", "ipv4-and-ipv6"),
        ("Upgrades: new images under the same tag", "upgrades-new-images-under-the-same-tag"),
        ("snake_case and [a link](x.md)", "snake_case-and-a-link"),
    ],
)
def test_slug_follows_github(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Notes\n\n```sh\n# not a heading\n```\n\n## Notes\n")
    assert anchors(page) == {"title", "notes", "notes-1"}


def test_the_documents_are_there() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/configuration.md", "docs/contributing.md"} <= names
    assert (ROOT / "README.md").read_text().startswith("# argusai-infra\n")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Here\n")
    page.write_text(
        "# Page\n\n[ok](other.md#here) [self](#page) [web](https://example.org/x#y) `[code](missing.md)`\n"
        "[no file](missing.md) [no heading](other.md#there)\n\n```md\n[fenced](missing.md)\n```\n"
    )
    problems = broken_links(page, tmp_path)
    assert [problem.split(": ", 1)[1] for problem in problems] == [
        "missing.md (no such file)",
        "other.md#there (no heading with that anchor in other.md)",
    ]
