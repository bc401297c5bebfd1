"""Errors shared across the package."""


class ConfigError(Exception):
    """A setting or the targets file is invalid. The message is one line naming the setting,
    the bad value and what is allowed; the command line prints it and exits with code 3."""
