"""Package discovery for the wheel; every other setting is in pyproject.toml.

``adapters/`` and ``weights/`` are top-level folders of the repository that
install as ``box2mask.adapters`` and ``box2mask.weights`` (pyproject.toml's
``package-dir``; PyPI already has a package named ``adapters``).
pyproject.toml's ``packages.find`` cannot give found packages a prefix, so
the packages are found here: a new subpackage under any of the three folders
is shipped without editing a list (a hand list once left ``box2mask.qa`` and
``box2mask.executors`` out of the wheel). tests/test_packaging.py builds the
wheel and checks it.
"""

from setuptools import find_packages, setup

#: source folder -> the package it installs as (as pyproject.toml's package-dir says)
MAPPED = {"adapters": "box2mask.adapters", "weights": "box2mask.weights"}


def packages() -> list[str]:
    found = find_packages(include=["box2mask", "box2mask.*"])
    for folder, name in MAPPED.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(where=folder)]
    return sorted(found)


setup(packages=packages())
