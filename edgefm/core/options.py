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


#: The upper bound of every count option, and why: one table, so no count is unbounded by oversight.
#: ``--threads 100000`` grew to 19.5 GB RSS creating TensorFlow's thread pools and ran for 8 minutes.
COUNT_BOUNDS: dict[str, tuple[int, str]] = {
    "--threads": (256, "TensorFlow starts that many intra-op and as many inter-op threads (each with its own "
                       "stack); 256 already outnumbers the cores of any machine edgefm trains on"),
    "--workers": (32, "each local worker is a TensorFlow process of several hundred MB on this machine; "
                      "a larger cluster belongs on several machines (--distribute with TF_CONFIG)"),
    "--samples": (100_000, "random data gains nothing from more rows than Fashion-MNIST's 60,000 training "
                           "images, and every row's reference outputs are held in memory"),
    "--calibration-samples": (100_000, "calibration keeps only each tensor's min and max, which settle long "
                                       "before that, and each sample runs the whole network once"),
}


def bounded_count(value: object, flag: str, what: str = "") -> int:
    """``value`` if it is a positive integer within ``COUNT_BOUNDS[flag]``; else a ConfigError that says why."""
    n = positive_int(value, flag)
    limit, why = COUNT_BOUNDS[flag]
    if n > limit:
        raise ConfigError(f"{flag} {n}{what} is more than {limit:,}: {why}. Pass at most {limit:,}.")
    return n


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
