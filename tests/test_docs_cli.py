"""The docs name only options that exist (issue 24): README.md and docs/*.md against the CLI.

- Every ``--option`` in a ``box2mask ...`` command of the docs (a fenced code block or an
  inline code span; ``python -m box2mask`` and ``torchrun ... -m box2mask`` too) is a
  visible option of that command (``box2mask qa apply --job``: of ``qa apply``).
- Every ``--option`` of a ``python benchmarks/X.py`` command is one of X's options, and
  every other ``--option`` the docs name is an option of some box2mask command (a
  former, hidden name too: prose may say it still works), of a benchmark script, or of
  one of the other tools the docs show (:data:`OTHER_TOOLS`).
- Every ``box2mask ...`` line of README's code blocks parses: click's own parser reads
  it (types, choices, required options) as the command would, without running it.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

from box2mask.cli import app
from box2mask.cli import commands as _commands  # noqa: F401  (registers the subcommands)

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: options of the other programs the docs show, by program (checked: the option is theirs)
OTHER_TOOLS = {
    "pip": {"--index-url", "--no-build-isolation", "--no-deps", "--upgrade"},
    "torchrun": {"--standalone", "--nproc-per-node", "--nnodes", "--rdzv-backend",
                 "--rdzv-endpoint"},
    "ray start": {"--head", "--port", "--node-ip-address", "--dashboard-host", "--address",
                  "--num-gpus"},
    "sbatch / #SBATCH / srun": {"--job-name", "--array", "--gres", "--cpus-per-task", "--mem",
                                "--time", "--requeue", "--signal", "--output", "--dependency",
                                "--wrap", "--nodes", "--gpus-per-node"},
    "benchmarks/gpu.sh": {"--dry-run", "--out", "--budget"},
    "python -m pytest": {"--help"},
    "git ls-tree": {"--name-only"},
}  # fmt: skip

_OPTION = re.compile(r"(?<![\w-])--[a-zA-Z][\w-]*")


@cache
def _tree() -> dict[tuple[str, ...], Any]:
    """Every command of the CLI by its path (``()`` the root, ``("qa", "apply")``)."""
    out: dict[tuple[str, ...], Any] = {}

    def walk(cmd: Any, path: tuple[str, ...]) -> None:  # typer's own click: no click.Group
        out[path] = cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


def _visible(path: tuple[str, ...]) -> set[str]:
    """The long options ``box2mask PATH --help`` lists (hidden former names left out)."""
    cmd = _tree()[path]
    names = {"--help"}
    for p in cmd.params:
        if getattr(p, "param_type_name", "") == "option" and not getattr(p, "hidden", False):
            names |= {o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    return names


@cache
def _all_box2mask_options() -> frozenset[str]:
    """Every option of every command, former names included: prose may say that
    ``--viz-out`` still works; a command line in the docs must use the current names."""
    out = {o for path in _tree() for o in _visible(path)}
    for cmd in _tree().values():
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option":
                out |= {o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    return frozenset(out)


@cache
def _benchmark_options(script: str) -> frozenset[str]:
    """The options a benchmark script declares (its ``"--name"`` string literals)."""
    path = REPO / "benchmarks" / script
    if not path.is_file():
        return frozenset()
    return frozenset(re.findall(r"[\"'](--[a-z][\w-]*)[\"']", path.read_text()))


def _snippets(text: str) -> list[tuple[str, bool]]:
    """``(code, fenced)``: each fenced block's text, and each inline code span."""
    out: list[tuple[str, bool]] = []
    fence = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
    for m in fence.finditer(text):
        out.append((m.group(1), True))
    prose = fence.sub("", text)
    out += [(m.group(1), False) for m in re.finditer(r"`([^`\n]+)`", prose)]
    return out


def _commands_of(code: str) -> list[list[str]]:
    """The shell commands of a snippet as token lists: continuations joined, comments
    dropped, split at ``&&``, ``||``, ``;`` and ``|`` (the latter only between words)."""
    code = re.sub(r"\\\n", " ", code)
    commands: list[list[str]] = []
    for line in code.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#" if not line.lstrip().startswith("#SBATCH") else ""
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote in prose
            tokens = line.split()
        current: list[str] = []
        for tok in tokens:
            if tok in ("&&", "||", ";", "|", "&"):
                commands.append(current)
                current = []
            else:
                current.append(tok)
        commands.append(current)
    return [c for c in commands if c]


def _box2mask_part(tokens: list[str]) -> list[str] | None:
    """The tokens after ``box2mask`` run as a command (first, or after ``-m``, ``exec``,
    ``srun``), else ``None`` (``pip install box2mask`` is no box2mask command)."""
    for k, tok in enumerate(tokens):
        if tok == "box2mask" and (k == 0 or tokens[k - 1] in ("-m", "exec", "srun")):
            return tokens[k + 1 :]
    return None


def _command_path(args: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """``(("qa", "apply"), rest)`` for ``["qa", "apply", "d.json", "--job", "J"]``."""
    path: tuple[str, ...] = ()
    rest = list(args)
    while rest and (*path, rest[0]) in _tree():
        path = (*path, rest.pop(0))
    return path, rest


def _options(tokens: list[str]) -> list[str]:
    return [m.group(0) for tok in tokens for m in _OPTION.finditer(tok)]


def _findings() -> list[str]:
    """Every option the docs name that does not exist where they name it."""
    others = set().union(*OTHER_TOOLS.values())
    bad: list[str] = []
    for doc in DOCS:
        name = doc.relative_to(REPO)
        for code, _fenced in _snippets(doc.read_text(encoding="utf-8")):
            checked: set[str] = set()
            for tokens in _commands_of(code):
                part = _box2mask_part(tokens)
                script = next((t for t in tokens if t.startswith("benchmarks/")), None)
                if part is not None:
                    path, rest = _command_path(part)
                    own = _visible(path)
                    for opt in _options(rest):
                        checked.add(opt)
                        if opt not in own:
                            bad.append(
                                f"{name}: `box2mask {' '.join(path)}` has no {opt}: {code!r}"
                            )
                elif script is not None and script.endswith(".py"):
                    own = _benchmark_options(Path(script).name)
                    for opt in _options(tokens):
                        checked.add(opt)
                        if opt not in own:
                            bad.append(f"{name}: {script} has no {opt}")
            for opt in _options([code]):
                if opt in checked:
                    continue
                known = (
                    opt in _all_box2mask_options()
                    or opt in others
                    or any(
                        opt in _benchmark_options(p.name)
                        for p in (REPO / "benchmarks").glob("*.py")
                    )
                )
                if not known:
                    bad.append(f"{name}: no command has {opt} (in {code.strip()[:80]!r})")
    return bad


def test_every_option_the_docs_name_exists() -> None:
    assert _findings() == []


def _readme_box2mask_lines() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = []
    for code, fenced in _snippets(text):
        if not fenced:
            continue
        for tokens in _commands_of(code):
            part = _box2mask_part(tokens)
            if part is not None:
                lines.append(part)
    return lines


@pytest.mark.parametrize("args", _readme_box2mask_lines(), ids=lambda a: " ".join(a)[:60])
def test_every_box2mask_line_of_the_readme_parses(args: list[str]) -> None:
    """click's parser reads the line as the command would (no command runs): each group
    parses its own options and leaves the rest to the subcommand it names."""
    cmd, ctx, rest, name = _tree()[()], None, list(args), "box2mask"
    while True:
        ctx = cmd.make_context(name, rest, parent=ctx)  # raises on an unknown or bad option
        if not hasattr(cmd, "commands"):
            return
        sub = [*ctx._protected_args, *ctx.args]  # typer's group keeps them for invoke()
        if not sub:
            return
        name, cmd, rest = cmd.resolve_command(ctx, sub)


def test_the_readme_has_box2mask_lines_and_the_checks_find_a_wrong_option() -> None:
    assert len(_readme_box2mask_lines()) >= 10
    fake = [["convert", "--dataset", "viso", "--out", "o", "--log-every", "3"]]
    path, rest = _command_path(fake[0])
    assert path == ("convert",) and "--log-every" not in _visible(path)
    assert "--viz-out" not in _visible(("viz",))  # a former name is hidden, so not documented


def test_the_precision_help_gives_the_readme_speed_figures() -> None:
    """Each speed ratio ``--precision``'s help states is one of the README's Speed table
    (which sums up docs/engine.md's runs): the two said different things."""
    opt = next(p for p in _tree()[("convert",)].params if "--precision" in p.opts)
    ratios = re.findall(r"(\d\.\d(?:-\d\.\d)?)x", opt.help)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    speed = readme.split("## Speed", 1)[1].split("\n## ", 1)[0].replace("–", "-")
    assert len(ratios) >= 6
    for r in ratios:
        assert f"{r}×" in speed, f"--precision says {r}x; README's Speed table does not"
