"""``box2mask weights list|download|verify``: the official checkpoints and the user's files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from box2mask.cli._common import console, err_console, run_safely
from box2mask.cli._flags import DebugOption
from box2mask.errors import CheckpointError
from box2mask.weights import (
    CATALOG,
    WeightsEntry,
    default_download_dir,
    download,
    find_local,
    human_size,
    search_dirs,
    sha256_file,
    verify_file,
)

if TYPE_CHECKING:
    from box2mask.models.checkpoint import CheckpointInfo

weights_app = typer.Typer(
    name="weights",
    help="The official SAM / HQ-SAM checkpoints: list, download, verify.",
    no_args_is_help=True,
)


def _bytes_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def _verify_with_progress(path: Path, entry: WeightsEntry) -> None:
    with _bytes_progress() as bar:
        task = bar.add_task(f"sha256 {path.name}", total=entry.size)
        verify_file(path, entry, progress=lambda done, _t: bar.update(task, completed=done))


@weights_app.command("list")
def list_command(
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Also check the sha256 of each file present (reads it all)."),
    ] = False,
    debug: DebugOption = False,
) -> None:
    """List the official checkpoints, and which are present in the weights directories."""

    def run() -> None:
        table = Table(title="Official checkpoints (--checkpoint NAME)")
        for col in ("name", "model", "arch", "size", "present"):
            table.add_column(col, style="bold cyan" if col == "name" else None)
        if verify:
            table.add_column("sha256")
        bad = 0
        for entry in CATALOG.values():
            path = find_local(entry)
            row = [
                entry.name,
                entry.kind if entry.loadable else f"[dim]{entry.kind} (not loadable)[/]",
                entry.arch,
                human_size(entry.size),
                str(path) if path else "[dim]-[/]",
            ]
            if verify:
                if path is None:
                    row.append("[dim]-[/]")
                else:
                    try:
                        _verify_with_progress(path, entry)
                        row.append("[green]ok[/]")
                    except CheckpointError as e:
                        bad += 1
                        row.append(f"[red]BAD[/] {e}")
            table.add_row(*row)
        console.print(table)
        notes = [f"{e.name}: {e.note}" for e in CATALOG.values() if e.note]
        for note in notes:
            console.print(f"[dim]{escape(note)}[/]", highlight=False)
        console.print(
            escape("searched, in order: " + ", ".join(f"{d}/" for d in search_dirs())),
            highlight=False,
        )
        console.print(
            escape(
                f"download with: box2mask weights download NAME  (into {default_download_dir()}/)"
            ),
            highlight=False,
        )
        if bad:
            raise CheckpointError(f"{bad} file(s) failed verification (see the sha256 column)")

    run_safely(run, debug)


@weights_app.command("download")
def download_command(
    names: Annotated[
        list[str], typer.Argument(metavar="NAME", help="Registry names (box2mask weights list).")
    ],
    dir: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            file_okay=False,
            help="Target directory (default: $BOX2MASK_HOME/weights if set, "
            "else ~/.cache/box2mask/weights).",
        ),
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            envvar="BOX2MASK_WEIGHTS_MIRROR",
            help="Base URL serving the files under their file names, instead of the publisher.",
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Download checkpoints; resumes a partial download and verifies the sha256."""

    def run() -> None:
        entries = [CATALOG.entry(n) for n in names]  # unknown names fail before any download
        for entry in entries:
            with _bytes_progress() as bar:
                task = bar.add_task(entry.file_name, total=entry.size)
                path = download(
                    entry,
                    dir,
                    mirror=mirror,
                    progress=lambda done, _t, task=task: bar.update(task, completed=done),
                )
            console.print(f"[green]ok[/] {escape(f'{entry.name}: {path}')}", highlight=False)

    run_safely(run, debug)


def encoder_shape(info: CheckpointInfo) -> str:
    """The ``encoder`` row of ``weights verify``.

    A ViT: its width, depth, heads and global-attention blocks. A TinyViT
    (MobileSAM, Light HQ-SAM) has no global-attention blocks: its stages'
    widths, depths, heads and windows, ``-`` where the first, convolutional
    (MBConv) stage has none.
    """
    from box2mask.models.checkpoint import TinyViTArch  # torch: only when a file is read

    enc = info.encoder
    if isinstance(enc, TinyViTArch):

        def attention(values: tuple[int, ...]) -> str:
            return "[" + ", ".join(["-", *(str(v) for v in values[1:])]) + "]"

        return (
            f"TinyViT, {len(enc.depths)} stages (the first convolutional): "
            f"widths {list(enc.embed_dims)}, depths {list(enc.depths)}, "
            f"heads {attention(enc.num_heads)}, windows {attention(enc.window_sizes)}"
        )
    return (
        f"embed_dim {info.embed_dim}, depth {info.depth}, heads {info.num_heads}, "
        f"global attention in blocks {list(info.global_attn_indexes)}"
    )


@weights_app.command("verify")
def verify_command(
    target: Annotated[
        str, typer.Argument(metavar="PATH", help="A checkpoint file or folder, or a registry name.")
    ],
    no_hash: Annotated[
        bool, typer.Option("--no-hash", help="Skip the sha256 (inspect the tensors only).")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Say what a checkpoint is (model, architecture, LoRA) and whether it is an official file."""

    def run() -> None:
        path = Path(target).expanduser()
        named: WeightsEntry | None = None
        if not path.exists() and target in CATALOG:
            named = CATALOG[target]
            found = find_local(named)
            if found is None:
                raise CheckpointError(
                    f"{named.name} ({named.file_name}) is not in "
                    + " or ".join(f"{d}/" for d in search_dirs())
                    + f"; get it with `box2mask weights download {named.name}`"
                )
            path = found
        elif not path.exists():
            raise CheckpointError(f"{target} does not exist (nor is it a weights name)")

        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("path", str(path))
        official = named
        if path.is_file():
            table.add_row("size", f"{path.stat().st_size:,} bytes")
            by_name = named or CATALOG.by_file_name(path.name)
            if not no_hash:
                with _bytes_progress() as bar:
                    task = bar.add_task(f"sha256 {path.name}", total=path.stat().st_size)
                    digest = sha256_file(path, lambda d, _t: bar.update(task, completed=d))
                table.add_row("sha256", digest)
                official = CATALOG.by_sha256(digest)
                if official is None and by_name is not None:
                    # An official file name with other contents: corrupt or truncated.
                    console.print(table)
                    raise CheckpointError(
                        f"{path} is named like {by_name.name} but its sha256 is not "
                        f"{by_name.sha256} ({by_name.sha256_source}); it is corrupt or "
                        f"incomplete: delete it and run `box2mask weights download {by_name.name}`"
                    )
                table.add_row(
                    "official file",
                    f"[green]{official.name}[/] (sha256 matches; {official.sha256_source})"
                    if official
                    else "no (sha256 matches no official file: a trained or custom checkpoint)",
                )
            elif by_name is not None:
                table.add_row("official file", f"named like {by_name.name} (sha256 not checked)")
        if official is not None and not official.loadable:
            table.add_row("loadable", f"[yellow]no[/]: {official.note}")
            console.print(table)
            return

        from box2mask.models.checkpoint import inspect_checkpoint
        from box2mask.models.lite.checkpoint import is_lite_file

        if path.is_file() and is_lite_file(path):
            _describe_lite(path, table)
            console.print(table)
            return
        info = inspect_checkpoint(path)
        table.add_row("model", f"[bold]{info.model}[/] (kind {info.kind})")
        table.add_row("architecture", info.arch)
        table.add_row("encoder", escape(encoder_shape(info)))
        if info.kind.startswith("ros-sam"):
            rank = "unknown" if info.lora_rank is None else str(info.lora_rank)
            table.add_row("LoRA", f"rank {rank}, {'folded' if info.lora_folded else 'unfolded'}")
        table.add_row("parameters", f"{info.num_params:,}")
        if official is not None and (official.kind, official.arch) != (info.kind, info.arch):
            console.print(table)
            raise CheckpointError(
                f"{path} matches {official.name}'s sha256 but its tensors read as "
                f"{info.kind} {info.arch}; please report this"
            )
        console.print(table)

    run_safely(run, debug)


def _describe_lite(path: Path, table: Table) -> None:
    """A lite file's rows: loaded strictly (its tensor digest checked), then its metadata."""
    import json

    from box2mask.models.lite.checkpoint import load

    ckpt = load(path)
    meta = ckpt.metadata
    arch = json.loads(meta["arch"])
    table.add_row("model", "[bold]lite[/] (box2mask's light model; tensors match their digest)")
    table.add_row(
        "architecture", escape(f"widths {arch['widths']}, full-resolution {arch['full']}")
    )
    table.add_row("parameters", f"{sum(p.numel() for p in ckpt.net.parameters()):,}")
    table.add_row(
        "window",
        escape(
            f"context {ckpt.context}, smallest {ckpt.min_side} px, input scale {ckpt.input_scale}"
        ),
    )
    for src in json.loads(meta.get("data", "[]")):
        what = src.get("source") or src.get("job") or src.get("file") or src.get("dataset")
        table.add_row("data", escape(f"{what}, {src.get('objects')} objects ({src.get('name')})"))
    dev = json.loads(meta.get("dev", "{}"))
    if dev.get("objects"):
        table.add_row(
            "development",
            f"IoU per object {dev['per_object_iou']}, per frame {dev['per_frame_iou']} "
            f"({dev['objects']} objects, step {dev.get('step')})",
        )
    if meta.get("licence"):
        table.add_row("licence", escape(meta["licence"]))
    if meta.get("command"):
        table.add_row("made by", escape(meta["command"]))
