"""Click parameter types and the options several commands share: syntax is parsed here, once.

Meaning (ranges, known names) is checked by the configs the commands build, so a
Python caller gets the same messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgefm.core.contract import DEFAULT_ARTIFACTS
from edgefm.core.errors import ConfigError
from edgefm.core.options import parse_int_list

ARTIFACTS = click.option(
    "--artifacts",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_ARTIFACTS,
    show_default=True,
    help="Artifacts directory (holds manifest.json).",
)
DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory with the four Fashion-MNIST IDX files (default: $EDGEFM_DATA_DIR, Debian's package, the cache).",
)
NO_VERIFY = click.option(
    "--no-verify", "no_verify", is_flag=True, help="Accept data whose checksums differ from the official release."
)
DATA = click.option(
    "--data", default=None, metavar="FILE|DIR|synthetic",
    help="Inputs for a model edgefm did not train: an .npz (one array per input, named like it), an .npy "
         "(one-input models), a directory of images (preprocessed as the manifest records), or 'synthetic' "
         "(seeded random). Default: Fashion-MNIST for edgefm's own model, synthetic for any other.",
)
VALUE_RANGE = click.option(
    "--value-range", "value_ranges", multiple=True, metavar="NAME=LO,HI",
    help="Range of the synthetic values of input NAME (repeatable); default [0, 1) for floats.",
)




class BoundOverride(click.ParamType):
    """``NAME.METRIC=VALUE`` -> ``(NAME, METRIC, VALUE)``; VALUE ``info`` (or ``none``) makes the metric informational."""

    name = "NAME.METRIC=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str, float | None]:
        if isinstance(value, tuple):
            return value
        target, sep, raw = str(value).partition("=")
        name, dot, metric = target.rpartition(".")
        if not sep or not dot or not name or not metric or not raw:
            self.fail(f"expected NAME.METRIC=VALUE (e.g. --bound onnx_int8.cosine=0.998), got {value!r}.", param, ctx)
        if raw.strip().lower() in ("info", "none"):
            return name, metric, None
        try:
            return name, metric, float(raw)
        except ValueError:
            self.fail(f"{value!r}: the bound {raw!r} is not a number (or 'info').", param, ctx)


def parse_name_values(pairs: tuple[str, ...] | list[str], flag: str) -> dict[str, float]:
    """``NAME=VALUE`` options (``--atol tflite_float16=0.05``) to ``{NAME: VALUE}``; ranges are the config's to check.

    A function, not a ParamType, so the message reads ``--atol: expected NAME=VALUE`` as it always has.
    """
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"{flag}: expected NAME=VALUE (e.g. {flag} tflite_float32=1e-4), got {pair!r}.")
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError(f"{flag} {name} must be a positive number, got {value!r}.") from None
    return out


class IntList(click.ParamType):
    """``1,32,256`` -> ``(1, 32, 256)``."""

    name = "N,N,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        flag = f"--{param.name.replace('_', '-')}" if param is not None and param.name else "value"
        return parse_int_list(value, flag)


def _import_modules(ctx: click.Context, param: click.Parameter, names: tuple[str, ...]) -> tuple[str, ...]:
    """``--import MODULE``: import the user's modules (custom Keras layers register themselves) before any load."""
    from edgefm.core.usermodules import import_user_modules

    import_user_modules(names)
    return names


IMPORT = click.option(
    "--import", "imports", multiple=True, metavar="MODULE", expose_value=False, callback=_import_modules,
    help="Import this Python module first (repeatable), e.g. the one defining a .keras file's custom layers "
         "(found in the current directory or on PYTHONPATH). Importing runs its code.",
)

class _ParsedBy(click.ParamType):
    """A ParamType over a library parser: its UsageError paragraph becomes click's usage error (exit 2)."""

    def parse(self, text: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        from edgefm.core.errors import UsageError

        try:
            return self.parse(value)
        except UsageError as e:
            self.fail(str(e), param, ctx)


class RuntimeSpecType(_ParsedBy):
    """``tflite-runtime==2.14.0`` -> ``RuntimeSpec``."""

    name = "PKG==VERSION"

    def parse(self, text: str) -> Any:
        from runtime_check.versions.spec import parse_runtime_spec

        return parse_runtime_spec(text)


class RuntimeRangeType(_ParsedBy):
    """``ai-edge-litert>=1.0,<=2.3`` -> ``RuntimeRange``."""

    name = "PKG>=A,<=B"

    def parse(self, text: str) -> Any:
        from runtime_check.versions.spec import parse_runtime_range

        return parse_runtime_range(text)


class BudgetType(_ParsedBy):
    """``NAME=256KiB`` (size) or ``NAME=2ms`` (latency) -> ``(NAME, value in bytes or seconds)``."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.name = "NAME=256KiB" if unit == "size" else "NAME=2ms"

    def parse(self, text: str) -> Any:
        from runtime_check.verify.baseline import parse_budget

        return parse_budget(text, self.unit)


class RegressionType(_ParsedBy):
    """``accuracy=0.3pt,size=5%,latency=10%`` -> ``{metric: Allowance}``."""

    name = "METRIC=LIMIT,..."

    def parse(self, text: str) -> Any:
        from runtime_check.verify.baseline import parse_regressions

        return parse_regressions(text)
