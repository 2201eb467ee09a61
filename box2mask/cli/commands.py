"""Imports every subcommand module so that they register on :data:`box2mask.cli.app`."""
