"""quiet_native_output: converter prints from C++ never reach the user, but are kept for errors."""

from __future__ import annotations

import logging
import os

import pytest

from edgefm.core.quiet import quiet_native_output


def test_native_writes_are_captured_and_descriptors_restored(capfd: pytest.CaptureFixture[str]) -> None:
    root_level = logging.getLogger().level
    with quiet_native_output() as captured:
        os.write(1, b"fully_quantize: 0, inference_type: 6\n")
        os.write(2, b"W0000 absl warning\n")
        logging.getLogger().warning("Please consider pre-processing before quantization")
    os.write(1, b"after\n")
    out, err = capfd.readouterr()
    assert out == "after\n" and "fully_quantize" not in err and "W0000" not in err
    assert "fully_quantize: 0" in captured.text and "W0000 absl warning" in captured.text
    assert logging.getLogger().level == root_level  # restored


def test_captured_text_survives_an_exception(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError):
        with quiet_native_output() as captured:
            os.write(2, b"error: 'tf.Erf' op is neither a custom op nor a flex op\n")
            raise RuntimeError("converter failed")
    assert "tf.Erf" in captured.tail() and "tf.Erf" not in capfd.readouterr().err
