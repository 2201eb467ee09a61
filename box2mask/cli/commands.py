"""Imports every subcommand module so that they register on :data:`box2mask.cli.app`."""

from box2mask.cli import app
from box2mask.cli import convert as _convert  # noqa: F401
from box2mask.cli import datasets as _datasets  # noqa: F401
from box2mask.cli import eval as _eval  # noqa: F401
from box2mask.cli import exchange as _exchange  # noqa: F401
from box2mask.cli import merge as _merge  # noqa: F401
from box2mask.cli import train as _train  # noqa: F401
from box2mask.cli import train_lite as _train_lite  # noqa: F401
from box2mask.cli import viz as _viz  # noqa: F401
from box2mask.cli.qa import qa_app
from box2mask.cli.weights import weights_app

app.add_typer(weights_app, name="weights")
app.add_typer(qa_app, name="qa")
