"""The one-line error every step of reading a data folder raises for the user to read."""


class DataError(ValueError):
    """A data folder that cannot be used; the message is one line for the user."""
