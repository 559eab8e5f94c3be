"""The user's own Python modules, imported before a model is loaded (``--import MODULE``).

A ``.keras`` file names its custom classes (layers, activations, losses) by
registered name; Keras finds them only once the module that defines them has run
its ``@keras.saving.register_keras_serializable()`` decorators. Importing runs
the module's code: only import modules you trust.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable

from edgefm.core.errors import UsageError

# Keras 3: "Could not locate class 'ScaledSwish'. Make sure custom classes ... Full object config:
# {'module': 'myswish', 'class_name': 'ScaledSwish', ...}" (keras/src/saving/serialization_lib.py)
_MISSING_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def import_user_modules(names: Iterable[str]) -> None:
    """Import each module by name (the current directory first on the path, as ``python -m`` has it)."""
    names = list(names)
    if not names:
        return
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name.removesuffix(".py"))
        except Exception as e:  # the user's code: any error it raises is theirs to see
            raise UsageError(
                f"--import {name}: importing it failed ({type(e).__name__}: {e}). Pass a module name (e.g. "
                "`--import my_layers` for my_layers.py) found in the current directory or on PYTHONPATH."
            ) from e


def missing_class_advice(message: str) -> str | None:
    """For Keras's "Could not locate class 'X'": which class is missing, its module, and the --import that helps."""
    found = _MISSING_CLASS.search(message)
    if found is None:
        return None
    cls = found.group(1)
    module = re.search(r"'module': '([^']+)', 'class_name': '" + re.escape(cls.rsplit(">", 1)[-1]) + "'", message)
    where = f" (saved from the module {module.group(1)!r})" if module and not module.group(1).startswith("keras") else ""
    hint = module.group(1) if where else "MODULE"
    return (f"it uses the custom class {cls!r}{where}, which Keras does not know in this process. Pass "
            f"--import {hint} naming the module that defines it (decorated with "
            "@keras.saving.register_keras_serializable()), found in the current directory or on PYTHONPATH")
