"""Shared validators for configs: CLI strings become enums, numbers are range-checked.

Each message names the CLI flag, so a Python caller of a config gets the same
one-paragraph error the command line shows.
"""

from __future__ import annotations

import enum
import math

from edgefm.core.errors import ConfigError


class Choice(str, enum.Enum):
    """A string enum whose values are the CLI spellings."""

    @classmethod
    def choices(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def parse(cls, value: str | Choice, flag: str) -> Choice:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ConfigError(
                f"{flag}: unknown value {value!r}; choose one of {', '.join(cls.choices())}."
            ) from None

    def __str__(self) -> str:  # so f-strings and click print the plain value
        return self.value



def positive_int(value: object, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{flag} must be a positive integer, got {value!r}.")
    return value


def positive_float(value: object, flag: str) -> float:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be a positive number, got {value!r}.") from None
    if not math.isfinite(f) or f <= 0:
        raise ConfigError(f"{flag} must be a positive finite number, got {value!r}.")
    return f


def parse_int_list(text: str, flag: str, example: str = "1,32,256") -> tuple[int, ...]:
    """``"1,32,256"`` to ``(1, 32, 256)`` (duplicates dropped); anything but positive integers is a ConfigError."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) <= 0:
            raise ConfigError(
                f"{flag}: {part or '(empty)'!r} is not a positive integer; give a comma-separated list such as {example}."
            )
        if int(part) not in values:
            values.append(int(part))
    return tuple(values)
