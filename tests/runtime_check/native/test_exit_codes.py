"""The C runners' exit statuses (runner_common.h's ``RC_*``) are the ones Python reads (``EXIT_CODES``).

A status added, renumbered or dropped on one side only would turn a runner's failure into
the wrong error type (or a bare "failed"): read the header as the compiler does, no build needed.
"""

from __future__ import annotations

import re

from edgefm.core.errors import ModelFileError, ParityError, RuntimeUnavailableError, UsageError
from runtime_check.native.build import COMMON_HEADER, source_dir
from runtime_check.native.runtime import EXIT_CODES

#: what each status means to Python, by the header's name for it
MEANING = {"RC_USAGE": UsageError, "RC_LIBRARY": RuntimeUnavailableError, "RC_MODEL": ModelFileError,
           "RC_INPUT": UsageError, "RC_SHAPE": UsageError, "RC_RUN": ModelFileError, "RC_MISMATCH": ParityError}


def header_codes() -> dict[str, int]:
    text = (source_dir() / COMMON_HEADER).read_text(encoding="utf-8")
    enum = re.search(r"enum\s*\{(.*?)\};", text, re.S)
    assert enum is not None, f"no enum of exit statuses in {COMMON_HEADER}"
    return {name: int(value) for name, value in re.findall(r"\b(RC_\w+)\s*=\s*(\d+)", enum.group(1))}


def test_the_header_and_python_know_the_same_exit_statuses() -> None:
    codes = header_codes()
    assert codes.pop("RC_OK") == 0
    assert sorted(codes.values()) == sorted(EXIT_CODES), (codes, sorted(EXIT_CODES))
    assert len(set(codes.values())) == len(codes), codes  # no two names share a status


def test_each_exit_status_means_the_same_on_both_sides() -> None:
    codes = header_codes()
    for name, error in MEANING.items():
        assert EXIT_CODES[codes[name]][0] is error, (name, codes[name], EXIT_CODES[codes[name]])


def test_a_renumbered_status_is_caught() -> None:
    """The mutation check: the same reading over a header whose RC_RUN moved finds the mismatch."""
    text = (source_dir() / COMMON_HEADER).read_text(encoding="utf-8").replace("RC_RUN = 7", "RC_RUN = 17")
    enum = re.search(r"enum\s*\{(.*?)\};", text, re.S)
    assert enum is not None
    codes = {n: int(v) for n, v in re.findall(r"\b(RC_\w+)\s*=\s*(\d+)", enum.group(1)) if n != "RC_OK"}
    assert sorted(codes.values()) != sorted(EXIT_CODES)
