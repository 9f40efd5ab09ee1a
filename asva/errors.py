"""Errors a user can fix: they are printed as one line, without a traceback, before any compute."""


class UserError(Exception):
    """Bad input (a config value, a path, a data file): the message names the key or the path."""


class ConfigError(UserError):
    """A config key or value is impossible."""


class DataError(UserError):
    """A data folder, split file or media file is missing or unreadable."""
