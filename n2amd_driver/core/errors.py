"""How every command ends on an error: one line that names the problem, a non-zero exit, and the
traceback only when asked for (``--debug``). Finished work is never lost by a failing command: each job
writes its checkpoints before it can fail."""
from __future__ import annotations

import sys
from typing import Callable

#: errors that are the input's fault: their message is the whole story
USER_ERRORS = (ValueError, FileNotFoundError, KeyError, RuntimeError, FloatingPointError, OSError)


def one_line(exc: BaseException) -> str:
    """The exception's message with any notes added on the way (``add_note``), on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, USER_ERRORS):
        text = f"{type(exc).__name__}: {text} (an internal error: rerun with --debug for the traceback)"
    notes = [" ".join(n.split()) for n in getattr(exc, "__notes__", [])]
    return "; ".join([text] + notes)


def run_command(prog: str, func: Callable[[], int | None], debug: bool = False) -> int:
    """``func()``'s exit code, or 2 with one line on stderr if it raises (130 on Ctrl-C)."""
    try:
        return int(func() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished work is saved (re-run the same command to resume)", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr, flush=True)
        return 2
