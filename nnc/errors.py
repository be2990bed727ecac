"""User-facing errors. Each carries a one-line message naming what is wrong.

The command-line drivers print ``nnc: error: <message>`` for any ``NNCError`` and exit
with status 1 (2 for bad command-line options); anything else is a bug in nnc.
"""


class NNCError(Exception):
    """Base of every error caused by the user's model, inputs or options."""


class ModelLoadError(NNCError):
    """The model file is missing, unreadable, corrupt or structurally invalid."""


class UnsupportedOpError(NNCError):
    """An op (or an attribute value of one) nnc cannot compile. Message names op, node, opset."""


class InvalidOptionError(NNCError):
    """A compiler option or pass option has a bad value."""


class InputMismatchError(NNCError, ValueError):
    """A runtime input has the wrong count, name, dtype or shape."""


class TargetError(NNCError):
    """The target triple/CPU is unknown, or its toolchain (cross gcc, qemu) is missing."""
