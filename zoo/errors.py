"""The one exception type users see."""


class ZooError(Exception):
    """A user mistake or a bad file: the message is one line naming the file and the fix.

    The CLI prints it without a traceback and exits with code 2.
    """
