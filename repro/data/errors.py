"""One error type for bad data input, so the CLI can print it without a traceback."""


class DataError(Exception):
    """Bad or missing data on disk. The message names the path, the field and what was expected."""
