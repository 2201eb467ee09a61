"""``box2mask datasets``: the adapters, the layout each expects, and their options."""

from __future__ import annotations

from rich.table import Table

import box2mask.adapters  # noqa: F401  (registers the adapters)
from box2mask.adapters import ADAPTERS
from box2mask.cli import app
from box2mask.cli._common import console


@app.command("datasets")
def datasets_command() -> None:
    """List the dataset adapters, the layout each expects and its options (--opt KEY=VALUE)."""
    table = Table(title="Datasets (--dataset NAME)", show_lines=True)
    table.add_column("name", style="bold cyan")
    table.add_column("expected layout")
    table.add_column("options (--opt KEY=VALUE)")
    for name, cls in ADAPTERS.items():
        opts = "\n".join(
            f"{k}={o.default!r}"
            + (f" ({'|'.join(o.choices)})" if o.choices else "")
            + f": {o.help}"
            for k, o in cls.options.items()
        )
        table.add_row(name, (cls.layout or "").strip(), opts or "-")
    console.print(table)
