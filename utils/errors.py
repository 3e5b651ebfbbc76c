"""The one error type a user sees (numpy-free, TensorFlow-free).

Every wrong input, wrong file or refused operation raises a ``UserError`` subclass
whose message is one line naming the file (and line) at fault.  Entry points catch
``UserError`` and print ``<program>: error: <message>`` to stderr with exit code 2,
never a traceback (``exit_on_user_error``).
"""
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A one-line, user-facing error (bad flag, bad file, refused operation)."""


class ConfigError(UserError, ValueError):
    """An invalid flag or flag combination (``utils.config``, ``utils.training.cluster``)."""


def exit_on_user_error(program, main, argv=None):
    """Run ``main(argv)``; a ``UserError`` becomes one stderr line and exit code 2."""
    try:
        return main(argv)
    except UserError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
