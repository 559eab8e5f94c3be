"""The device in the loop: the native runners on an Arm64 board, emulated here or reached over SSH.

``targets`` parses ``--device`` (``qemu-aarch64[:CPU]``, ``ssh://user@host[:port][/dir]``);
``toolchain`` finds the cross compiler and the emulator; ``libraries`` fetches the
aarch64 runtime libraries from the PyPI wheels of the installed versions;
``sysroot`` builds the ``-L`` prefix whose /proc/cpuinfo matches the emulated CPU;
``emulated`` and ``ssh`` are the places behind the device rows (``runtime_check.verify.device_rows`` is
the hook verify calls); ``ledger`` compares kernel paths.
"""
