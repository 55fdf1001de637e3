"""Exceptions raised by mixdown.

The library raises these instead of calling ``sys.exit``; the CLI turns them into
one-line messages and non-zero exit codes.
"""


class MixdownError(Exception):
    """Base class for every error a user can cause with bad input."""


class AudioError(MixdownError):
    """An audio file is missing, unreadable, corrupt, empty or incompatible."""


class ParamsError(MixdownError):
    """Console parameters are malformed, out of range or do not fit the multitrack."""
