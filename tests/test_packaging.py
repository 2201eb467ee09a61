"""The wheel as users get it (issue 24): built, installed (not editable) into a fresh venv, run.

CI and the dev machines install box2mask editable, which imports every
subpackage from the source tree whether the wheel ships it or not: a wheel
without ``box2mask.qa`` (or ``executors`` before it) passed every other test.
Here the committed sources are built into a wheel (``pip wheel``, no build
isolation: the test environment's setuptools, no network), the wheel is
installed into a fresh virtual environment, and from there the console
script runs every command's ``--help``, the README's demo convert on
``examples/viso-mini`` and ``qa`` on its output.

Installing torch & co. into the fresh venv would cost gigabytes, so the venv
sees the test environment's site-packages through a ``.pth`` file. Lines of
a ``.pth`` are appended to ``sys.path`` after the venv's own site-packages,
and the ``.pth`` files *in* the outer site-packages are not run, so the
outer editable box2mask (an import hook installed by its ``.pth``) is not
visible; the test checks that the imported ``box2mask`` is the wheel's
(its ``__file__`` lies in the fresh venv), from a working folder outside the
repository (``python -c`` would put the current folder first on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: source folder -> the package it is installed as (pyproject.toml's package-dir)
MAPPED = {"box2mask": "box2mask", "adapters": "box2mask.adapters", "weights": "box2mask.weights"}


def _source_tree(dest: Path) -> Path:
    """The committed sources (``git ls-files``, with their working-tree contents) in ``dest``.

    Not the working folder itself: a build writes ``build/`` and ``*.egg-info``
    into it, and an untracked file (a checkpoint left in ``box2mask/``) must
    not decide what the test sees.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, check=True, capture_output=True,
        ).stdout.decode("utf-8", "surrogateescape")  # fmt: skip
        files = [f for f in listed.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist)
        files = [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not {".git", "build", "__pycache__"} & set(p.parts)
        ]
    for rel in files:
        src = REPO / rel
        if src.is_file():  # listed but deleted in the working tree: skip
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _packages_in_source(tree: Path) -> set[str]:
    """Every package of the source tree under its installed name (folders with ``__init__.py``)."""
    found = set()
    for folder, name in MAPPED.items():
        for init in (tree / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(tree / folder).parts
            found.add(".".join((name, *rel)))
    return found


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["COLUMNS"] = "200"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(res: subprocess.CompletedProcess[str]) -> str:
    shown = f"$ {' '.join(map(str, res.args))}\nexit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert res.returncode == 0, shown
    return res.stdout


def _readme_demo() -> list[str]:
    """The README's demo convert (``box2mask convert ... examples/viso-mini ...``), as argv."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        for cmd in line.split("&&"):
            cmd = cmd.strip()
            if cmd.startswith("box2mask convert") and "examples/viso-mini" in cmd:
                return cmd.split()[1:]
    raise AssertionError("README.md has no `box2mask convert ... examples/viso-mini` command")


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel built from the committed sources, installed into a fresh venv."""
    base = tmp_path_factory.mktemp("wheel")
    tree = _source_tree(base / "src")
    wheels = base / "wheels"
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--no-index", "-q", "-w", str(wheels), str(tree)], cwd=base))  # fmt: skip
    (wheel,) = wheels.glob("box2mask-*.whl")
    env = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    py = env / "bin" / "python"
    site = _ok(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=base)).strip()  # fmt: skip
    # every site folder the test environment imports from (a venv may chain to another
    # through a .pth of its own, as the dev machines' helper venvs do). Only folders named
    # site-packages: never the source tree, though the README's venv (.venv) lies inside
    # the repository and its site-packages is where CI's typer and numpy are.
    outer = dict.fromkeys(
        p for p in [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path]
        if p and Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()
    )  # fmt: skip
    (Path(site) / "_outer_site_packages.pth").write_text("".join(p + "\n" for p in outer))
    _ok(_run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
              "--no-index", "-q", str(wheel)], cwd=base))  # fmt: skip
    work = base / "work"  # outside the repository: nothing there shadows the wheel
    work.mkdir()
    return {"wheel": wheel, "env": env, "py": py, "bin": env / "bin" / "box2mask", "work": work,
            "src": tree}  # fmt: skip


def test_wheel_holds_every_package(installed: dict[str, Path]) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("/__init__.py")}
    missing = sorted(_packages_in_source(installed["src"]) - shipped)
    assert not missing, f"the wheel lacks {missing}; pyproject.toml/setup.py must find them"
    assert "box2mask/qa/__init__.py" in names
    # the shipped lite weights (issue 26): --model lite and --model auto need no download
    assert "box2mask/models/lite/lite.safetensors" in names


def test_safetensors_in_a_package_folder_ship_in_the_wheel(
    installed: dict[str, Path], tmp_path: Path
) -> None:
    """Weights shipped in the package (a later ``box2mask/models/*.safetensors``) are package
    data: built here from a copy of the sources with such a file added."""
    tree = shutil.copytree(installed["src"], tmp_path / "src")
    probe = tree / "box2mask" / "models" / "probe-weights.safetensors"
    probe.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")  # an empty safetensors file
    (tree / "adapters" / "probe.safetensors").write_bytes(probe.read_bytes())
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--no-index", "-q", "-w", str(tmp_path / "w"), str(tree)], cwd=tmp_path))  # fmt: skip
    (wheel,) = (tmp_path / "w").glob("box2mask-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "box2mask/models/probe-weights.safetensors" in names
    assert "box2mask/adapters/probe.safetensors" in names


def test_installed_box2mask_is_the_wheels(installed: dict[str, Path]) -> None:
    code = "import box2mask, box2mask.adapters, box2mask.weights, torch, sys; " \
           "print(box2mask.__file__); print(box2mask.adapters.__file__)"  # fmt: skip
    out = _ok(_run([str(installed["py"]), "-c", code], cwd=installed["work"])).split()
    for f in out:
        assert Path(f).is_relative_to(installed["env"]), f"imported {f}, not the wheel's copy"


def _command_paths(installed: dict[str, Path]) -> list[list[str]]:
    """Every command and subcommand of the installed CLI (walked from its click tree; typer
    may bring its own copy of click, so groups are told by their ``commands``)."""
    code = (
        "import json, typer\n"
        "from box2mask.cli import app\n"
        "from box2mask.cli import commands\n"
        "def walk(cmd, path):\n"
        "    yield path\n"
        "    for name, sub in sorted(getattr(cmd, 'commands', {}).items()):\n"
        "        if not sub.hidden:\n"
        "            yield from walk(sub, path + [name])\n"
        "print(json.dumps(list(walk(typer.main.get_command(app), []))))\n"
    )
    return json.loads(_ok(_run([str(installed["py"]), "-c", code], cwd=installed["work"])))


def test_every_command_help_runs_from_the_wheel(installed: dict[str, Path]) -> None:
    paths = _command_paths(installed)
    names = {" ".join(p) for p in paths}
    for needed in ("", "convert", "qa", "qa apply", "weights list", "train export", "merge"):
        assert needed in names, f"no command {needed!r} in {sorted(names)}"
    for path in paths:
        out = _ok(_run([str(installed["bin"]), *path, "--help"], cwd=installed["work"]))
        assert re.search(r"Usage: box2mask", out), out


def test_readme_demo_and_qa_run_from_the_wheel(installed: dict[str, Path]) -> None:
    work = installed["work"]
    examples = work / "examples"
    shutil.copytree(REPO / "examples" / "viso-mini", examples / "viso-mini")
    argv = _readme_demo()
    _ok(_run([str(installed["bin"]), *argv], cwd=work))
    out = work / argv[argv.index("--out") + 1]
    coco = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    assert len(coco["images"]) == 24 and coco["annotations"]
    # the wheel's own lite weights ran (the README's first command needs no download)
    summary = json.loads((out / ".box2mask" / "finished.json").read_text(encoding="utf-8"))
    assert summary["model"]["name"] == "lite", summary["model"]
    assert {a["mask_source"] for a in coco["annotations"]} >= {"model"}
    # `qa` reads the job folder (the README: box2mask qa --job JOB)
    res = _ok(_run([str(installed["bin"]), "qa", "--job", str(out)], cwd=work))
    assert (out / "qa" / "qa.json").is_file(), res
