"""One exception type for every problem a user can fix.

The CLI turns an :class:`EdgefaceError` into a single line on stderr and a non-zero exit, so every module raises
it with a message that names the file or value at fault instead of letting a library traceback escape.
"""


class EdgefaceError(Exception):
    """A user-facing error: the message is one line that names the problem."""


class NotFound(EdgefaceError):
    """What was asked for is not there (a person, an enrolled face): a server answers 404, not 400."""
