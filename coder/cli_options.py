"""Options, error handling and messages shared by every `coder` command.

Command modules import from here, never from `coder.cli`, so the group can import them and
register each one explicitly without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from .errors import CoderError
from .schemes import SCHEMES

__all__ = ["scheme_option", "handle_errors", "echo_err", "UserError"]

scheme_option = click.option(
    "--scheme", default="soc2000", show_default=True,
    help=f"Classification to code to: {', '.join(SCHEMES)}.",
)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


class UserError(click.ClickException):
    """A mistake in what the user asked for; exit code 2 like click's usage errors."""

    exit_code = 2


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn `CoderError` (and unreadable files) into ``Error: ...`` and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CoderError as exc:
            raise UserError(str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(str(exc)) from None

    return wrapper
