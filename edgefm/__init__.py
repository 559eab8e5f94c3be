"""edgefm: a TensorFlow model to a device, with proof that the device runs what was trained.

Packages follow the data flow (imports point down, never up):
``core`` (errors, manifest, contract, files) <- ``formats`` and ``data`` <- ``train``;
the top-level ``export`` and ``runtime_check`` packages build on ``core``, ``formats``
and ``data``; ``cli`` alone reaches across all of them.
"""
