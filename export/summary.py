"""The table ``edgefm export`` prints: one row per exported file, sizes relative to float32 TFLite."""

from __future__ import annotations

from collections.abc import Sequence

from edgefm.core.fileio import human_bytes
from edgefm.core.manifest import Manifest
from edgefm.core.tables import fit_table
from export.variants import SIZE_REFERENCES


def size_reference(manifest: Manifest) -> str | None:
    """The artifact sizes are compared with: float32 TFLite, else float32 ONNX."""
    return next((name for name in SIZE_REFERENCES if name in manifest.artifacts), None)


def summary_table(manifest: Manifest, names: Sequence[str], width: int | None = None) -> str:
    """A plain-text table of the artifacts ``names`` (file, size, size ratio, conversion seconds).

    One row per artifact, or with ``width`` (the terminal's) one block per artifact when the
    rows do not fit (``edgefm.core.tables``).
    """
    ref = size_reference(manifest)
    ref_bytes = manifest.artifacts[ref].bytes if ref else None
    header = ("artifact", "file", "quantization", "size", f"x {ref}" if ref else "x ref", "seconds")
    rows = []
    for name in names:
        a = manifest.artifact(name)
        ratio = f"{a.bytes / ref_bytes:.2f}" if ref_bytes else "-"
        seconds = a.extra.get("seconds")
        rows.append((name, a.path, a.quantization, human_bytes(a.bytes), ratio,
                     f"{seconds:.2f}" if isinstance(seconds, (int, float)) else "-"))
    return "\n".join(fit_table(header, rows, width, right={3, 4, 5}))  # numbers right-aligned
