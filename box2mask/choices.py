"""The fixed choices of options, declared once as ``str`` enums.

Each enum is what an option accepts; validation, ``--help`` texts and the
sweep's axis values read it, so a new choice is one line here. Options keep
plain ``str`` values (``Window.parse(...)`` returns the member, whose
``.value`` is stored), so job identities and outputs do not change.

Choices that come from a registry (``--model``, ``--format``,
``--executor``) are listed from it instead (``MODELS.names()`` ...).
"""

from __future__ import annotations

from enum import Enum

from box2mask.errors import UsageError


class Choice(str, Enum):
    """A ``str`` enum whose members are an option's accepted values."""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def spoken(cls) -> str:
        """``'a' or 'b'`` / ``a, b or c``: the choices as a message names them.

        >>> Window.spoken(), Precision.spoken()
        ("'centred' or 'clamped'", 'auto, fp32, bf16 or int8')
        """
        vals = cls.values()
        if len(vals) == 2:
            return f"{vals[0]!r} or {vals[1]!r}"
        return ", ".join(vals[:-1]) + f" or {vals[-1]}"

    @classmethod
    def parse(cls, value: object, option: str) -> str:
        """``value`` as one of the choices (its plain ``str``), else a UsageError naming ``option``."""
        try:
            return cls(value).value
        except ValueError:
            raise UsageError(f"{option} must be {cls.spoken()}, got {value!r}") from None


class Window(Choice):
    """Where the crop window sits around the box (DESIGN §4)."""

    CENTRED = "centred"  # box2mask: centred on the box, padded past the frame edge
    CLAMPED = "clamped"  # the authors' code: shifted to stay inside the frame


class Interpolation(Choice):
    """How crops are upsampled to the model's 1024 input."""

    BICUBIC = "bicubic"
    BILINEAR = "bilinear"


class Precision(Choice):
    """The numeric precision of prompt models."""

    AUTO = "auto"  # bf16 on CUDA, fp32 elsewhere
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"  # CPU: int8 encoder matrix products


class DeviceType(Choice):
    """The device types ``--device`` takes (with an index: ``cuda:1``)."""

    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"
