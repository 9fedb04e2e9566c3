"""Exceptions raised by ivos. Every public function validates its input and raises these
(never ``assert``), with a message that names the argument, what it got and what it expected."""


class IvosError(Exception):
    """Base class of every error ivos raises on purpose."""


class InvalidInput(IvosError, ValueError):
    """An argument has the wrong type, dtype, shape or value. The message names the argument."""


class ModelError(IvosError):
    """A model bundle is missing, corrupt or incompatible. The message names the file and field."""


class BackendUnavailable(IvosError, RuntimeError):
    """The requested backend/device cannot run here. The message says which package to install."""
