"""Error types shared by modules that cannot import each other (repro.config imports repro.model.config)."""


class ConfigError(ValueError):
    """A config field or override that cannot be used; the message names the field and what was expected."""
