"""Other runtime versions as runners: a released LiteRT / TFLite / ONNX Runtime from PyPI, run beside edgefm's own.

``spec`` parses ``tflite-runtime==2.14.0`` (the packages edgefm knows how to run),
``environment`` builds one virtual environment per version in the per-user cache
(wheels fetched from PyPI with their sha256 recorded; the directory appears whole
or not at all), ``runtime`` is the ``Runtime`` that talks to a small child
process (``child.py``, run by that environment's Python; tensors travel as .npy
files), and ``rows`` is the hook verify calls to add one row per version.
"""
