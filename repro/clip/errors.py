"""One error type for CLIP problems a user can fix (missing weights, bad spec), printed without a traceback."""


class ClipError(Exception):
    """The message names what was asked for, what is missing and the command or option that fixes it."""
