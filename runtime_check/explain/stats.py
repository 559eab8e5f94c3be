"""Per tensor pair, statistics reduced batch by batch (no tensor is kept past its batch).

``TensorStats.add(ref, got)`` accumulates sums over every element; the metrics are read
from them at the end: max abs error, cosine of the flattened tensors, SNR in dB
(``10 log10(sum ref^2 / sum err^2)``; ``inf`` when the error is exactly zero), and, for a
quantized candidate tensor of scale ``s``, the error in quantization steps: ``rmse / s``
and ``max |err| / s`` (LSB). TFLite's QuantizationDebugger calls ``rmse/scale`` of about
0.29 healthy (uniform rounding: 1/sqrt(12)) and flags layers above 0.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TensorStats:
    scale: float | None = None
    count: int = 0
    max_abs: float = 0.0
    ref2: float = 0.0
    got2: float = 0.0
    dot: float = 0.0
    err2: float = 0.0
    nonfinite: int = 0
    #: per channel (the last axis, TF's layout) sum ref^2 and sum err^2: a tensor whose energy sits in one
    #: outlier channel has a fine SNR while its other channels drown in the rounding of that channel's range
    ch_ref2: np.ndarray | None = field(default=None, repr=False)
    ch_err2: np.ndarray | None = field(default=None, repr=False)

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        r = np.asarray(ref, dtype=np.float64)
        g = np.asarray(got, dtype=np.float64)
        bad = ~np.isfinite(g)
        self.nonfinite += int(bad.sum())
        g = np.where(bad, 0.0, g)
        e = g - r
        if r.ndim >= 2 and r.shape[-1] > 1:  # per channel: the last axis
            rc, ec = r.reshape(-1, r.shape[-1]), e.reshape(-1, r.shape[-1])
            self.ch_ref2 = (0 if self.ch_ref2 is None else self.ch_ref2) + np.einsum("ij,ij->j", rc, rc)
            self.ch_err2 = (0 if self.ch_err2 is None else self.ch_err2) + np.einsum("ij,ij->j", ec, ec)
        r, g, e = r.ravel(), g.ravel(), e.ravel()
        self.count += r.size
        if r.size:
            self.max_abs = max(self.max_abs, float(np.max(np.abs(e))))
        self.ref2 += float(r @ r)
        self.got2 += float(g @ g)
        self.dot += float(r @ g)
        self.err2 += float(e @ e)

    @property
    def cosine(self) -> float:
        if self.ref2 == 0 and self.got2 == 0:
            return 1.0
        if self.ref2 == 0 or self.got2 == 0:
            return 0.0
        return self.dot / math.sqrt(self.ref2 * self.got2)

    @property
    def snr_db(self) -> float:
        if self.nonfinite:
            return -math.inf
        if self.err2 == 0:
            return math.inf
        if self.ref2 == 0:
            return -math.inf
        return 10 * math.log10(self.ref2 / self.err2)

    @property
    def channel_snr_db(self) -> np.ndarray | None:
        """SNR in dB of each channel that carries signal (TF's reference not all zero: a dead ReLU is no channel)."""
        if self.ch_ref2 is None or self.ch_err2 is None:
            return None
        live = self.ch_ref2 > 0
        if not live.any():
            return None
        with np.errstate(divide="ignore"):
            return 10 * np.log10(self.ch_ref2[live] / self.ch_err2[live])

    @property
    def median_channel_db(self) -> float | None:
        """The median channel's SNR: near the tensor's SNR when the error is spread evenly (every healthy export
        measured), far below it when one outlier channel sets a shared quantization range (measured: 0.0 dB
        against the tensor's 41.9 dB). The minimum is no use: a rarely firing ReLU unit rounds to 0 in any int8
        model (0 dB in a healthy one)."""
        snr = self.channel_snr_db
        return None if snr is None else float(np.median(snr))

    @property
    def rmse(self) -> float:
        return math.sqrt(self.err2 / self.count) if self.count else 0.0

    @property
    def rmse_lsb(self) -> float | None:
        return None if not self.scale else self.rmse / self.scale

    @property
    def max_lsb(self) -> float | None:
        return None if not self.scale else self.max_abs / self.scale
