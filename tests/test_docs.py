"""Every `featx ...` example in the README and docs/ is a command the CLI accepts: known commands and options,
values within their choices (parsed as the CLI parses them, without running anything)."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from featx.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples(page: Path) -> list[str]:
    """The featx command lines of a page's bash blocks (continuations joined, comments dropped)."""
    out = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("featx "):
                out.append(line)
    return out


ALL = [(p.relative_to(ROOT).as_posix(), cmd) for p in PAGES for cmd in examples(p)]


def test_the_pages_have_examples():
    pages = {p for p, _ in ALL}
    assert {"docs/extract.md", "docs/evaluate.md", "docs/finetune.md", "docs/data.md", "docs/radiomics.md"} <= pages
    assert len(ALL) >= 30


@pytest.mark.parametrize("page, line", ALL, ids=[f"{p}:{c[:60]}" for p, c in ALL])
def test_an_example_parses(page, line):
    args = shlex.split(line)[1:]
    cmd, path = typer.main.get_command(app), ["featx"]
    while hasattr(cmd, "commands"):  # down the command groups to the command itself
        assert args and args[0] in cmd.commands, f"{page}: {line!r}: no command {args[:1]} under {' '.join(path)}"
        path.append(args[0])
        cmd = cmd.commands[args.pop(0)]
    cmd.make_context(" ".join(path), args)  # parses every option and value as the CLI does; runs nothing
