"""User-facing errors: the CLI prints their message as one line, never a traceback."""


class SynAlignError(Exception):
    """A problem the user can fix (bad input, bad config); the message says what to do."""


class InputError(SynAlignError):
    """A data file that cannot be read as labelled texts."""


class ConfigError(SynAlignError):
    """A configuration value that is missing, unknown or out of range."""
