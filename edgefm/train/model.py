"""The classifiers: ``tf.Module``s of hand-made ``tf.Variable``s (no Keras layers).

A ``tf.Module`` (not a ``keras.Model``) because Keras 3 does not track raw
``tf.Variable`` attributes of a ``keras.Model``: its ``trainable_variables`` is
empty and ``apply_gradients`` fails. ``tf.Module`` tracks them, checkpoints them
and saves them.

Serving contract (what every exporter and runtime relies on): the
``serving_default`` signature takes ``images``: float32 ``[None, 28, 28]`` in
[0, 1] and returns ``logits`` and ``probabilities`` (softmax), both ``[None, 10]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from edgefm.core.contract import (
    CLASS_NAMES,
    IMAGE_SHAPE,
    INPUT_NAME,
    LABELS_SIGNATURE,
    NUM_CLASSES,
    SAVEDMODEL_FORMAT,
    SERVING_SIGNATURE,
)
from edgefm.train.config import ModelKind

if TYPE_CHECKING:  # pragma: no cover
    from edgefm.core.manifest import Artifact

IMAGES_SPEC = tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name=INPUT_NAME)


def glorot_uniform(shape: tuple[int, ...], fan_in: int, fan_out: int, seed: tuple[int, int]) -> tf.Tensor:
    """GlorotUniform, stateless so that the same seed gives the same weights."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.stateless_uniform(shape, seed=seed, minval=-limit, maxval=limit, dtype=tf.float32)


class Classifier(tf.Module):
    """Base: variables, the logits function, and the serving signature."""

    kind: ModelKind

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        # Class names travel inside the SavedModel (and its `labels` signature).
        self.class_names = tf.Variable(list(CLASS_NAMES), trainable=False, name="class_names")

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Logits for float32 images [B, 28, 28] in [0, 1]."""
        raise NotImplementedError

    def training_logits(self, images: tf.Tensor) -> tf.Tensor:
        """The logits a training step differentiates (a batch-norm model uses the batch's statistics here)."""
        return self(images)

    @tf.function(input_signature=[IMAGES_SPEC])
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = self(images)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    @tf.function(input_signature=[])
    def labels(self) -> dict[str, tf.Tensor]:
        return {"class_names": self.class_names.read_value()}

    @property
    def parameter_count(self) -> int:
        return int(sum(math.prod(v.shape) for v in self.trainable_variables))


class MLP(Classifier):
    """The reference network: flatten 784 -> dense(hidden) + ReLU -> dense 10 logits."""

    kind = ModelKind.MLP

    def __init__(self, hidden_units: int = 20, seed: int = 0) -> None:
        super().__init__(name="mlp")
        n_in = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
        # w1 is stored [hidden, 784] (out x in, as TFLite's FULLY_CONNECTED keeps its weights): the step's weight
        # gradient dZ^T X then comes out in rows of 784, and an XLA-compiled epoch on one thread takes 0.57-0.60x
        # the time it took with [784, hidden] (measured side by side, issue 20; the forward matmul reads w1
        # transposed at no cost). Drawn as [784, hidden] and transposed: the same seed starts from the same numbers.
        self.w1 = tf.Variable(tf.transpose(glorot_uniform((n_in, hidden_units), n_in, hidden_units, (seed, 1))), name="w1")
        self.b1 = tf.Variable(tf.zeros([hidden_units]), name="b1")
        self.w2 = tf.Variable(glorot_uniform((hidden_units, NUM_CLASSES), hidden_units, NUM_CLASSES, (seed, 2)), name="w2")
        self.b2 = tf.Variable(tf.zeros([NUM_CLASSES]), name="b2")

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        x = tf.reshape(images, [-1, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]])
        h = tf.nn.relu(tf.matmul(x, self.w1, transpose_b=True) + self.b1)
        return tf.matmul(h, self.w2) + self.b2

    def training_logits(self, images: tf.Tensor) -> tf.Tensor:
        """The same logits with the hidden layer kept as [hidden, batch]: its gradient is then dH^T X, a
        plain [hidden, B] x [B, 784] matmul that needs no transposed operand, and the XLA-compiled epoch
        took 0.94x the time of ``__call__``'s [batch, hidden] (measured side by side, issue 20). Serving
        keeps ``__call__``, which maps onto TFLite's FULLY_CONNECTED."""
        x = tf.reshape(images, [-1, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]])
        h_t = tf.nn.relu(tf.matmul(self.w1, x, transpose_b=True) + self.b1[:, None])
        return tf.matmul(h_t, self.w2, transpose_a=True) + self.b2


class CNN(Classifier):
    """A tiny convnet with batch norm after each pooling:
    conv3x3(16)+ReLU+pool+BN -> conv3x3(32)+ReLU+pool+BN -> dense(hidden)+ReLU -> 10.

    Batch norm after the pooling (not after the convolution) normalises 4x fewer values
    for the same effect on training: measured on 2 shared cores (issue 20), the batch norm
    on the conv outputs made an epoch ~2.5x slower, after the pooling it costs little; with
    momentum SGD, flipped images and label smoothing (``MODEL_DEFAULTS``) this net, with the
    default dense layer of 48 (80,634 parameters), reached 92.33%, 92.16%, 92.48% and 91.84%
    test accuracy with seeds 0-3 in 12 epochs, 92.36%, 92.23% and 92.09% with seeds 0, 1 and 3 in 13 (the
    default; release 1's CNN, without batch norm: ~90.4%).
    Training normalises with the batch's statistics (``training_logits``, one fused op per
    batch norm) and keeps moving averages, which serving uses. Each batch-norm offset is the
    bias of its convolution. The first batch norm has no trainable scale: the convolution after
    it, a linear map, can learn any per-channel scale itself, and without one the scale serving
    applies, 1/sqrt(var + eps), is positive, so it folds into the first kernel (``__call__``).
    """

    kind = ModelKind.CNN
    c1, c2 = 16, 32
    bn_momentum, bn_epsilon = 0.9, 1e-3

    def __init__(self, hidden_units: int = 48, seed: int = 0) -> None:
        super().__init__(name="cnn")
        c1, c2 = self.c1, self.c2
        # Glorot fans for a conv kernel: receptive field x channels.
        self.k1 = tf.Variable(glorot_uniform((3, 3, 1, c1), 9 * 1, 9 * c1, (seed, 1)), name="k1")
        self.c1b = tf.Variable(tf.zeros([c1]), name="c1b")
        self.k2 = tf.Variable(glorot_uniform((3, 3, c1, c2), 9 * c1, 9 * c2, (seed, 2)), name="k2")
        self.c2b = tf.Variable(tf.zeros([c2]), name="c2b")
        self.g2 = tf.Variable(tf.ones([c2]), name="g2")
        # The moving statistics: checkpointed and saved (serving normalises with them), not trained.
        self.m1 = tf.Variable(tf.zeros([c1]), trainable=False, name="m1")
        self.v1 = tf.Variable(tf.ones([c1]), trainable=False, name="v1")
        self.m2 = tf.Variable(tf.zeros([c2]), trainable=False, name="m2")
        self.v2 = tf.Variable(tf.ones([c2]), trainable=False, name="v2")
        flat = 7 * 7 * c2
        self.w1 = tf.Variable(glorot_uniform((flat, hidden_units), flat, hidden_units, (seed, 3)), name="w1")
        self.b1 = tf.Variable(tf.zeros([hidden_units]), name="b1")
        self.w2 = tf.Variable(glorot_uniform((hidden_units, NUM_CLASSES), hidden_units, NUM_CLASSES, (seed, 4)), name="w2")
        self.b2 = tf.Variable(tf.zeros([NUM_CLASSES]), name="b2")

    def _norm(self, x: tf.Tensor, scale: tf.Tensor, offset: tf.Variable, mean_var: tf.Variable,
              var_var: tf.Variable, training: bool) -> tf.Tensor:
        if training:
            # One fused op and its fused gradient (FusedBatchNormV3) instead of tf.nn.moments and five elementwise
            # ops with theirs: measured (issue 20, 2 cores), 12 epochs train in ~1.1-1.2x release 1's CNN time
            # instead of 1.4-1.8x. Its batch variance is Bessel-corrected (n / (n - 1), n = batch x height x
            # width >= 6,272: a factor below 1.0002), as a moving average of the population's variance wants.
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(x, scale, offset, epsilon=self.bn_epsilon, is_training=True)
            m = self.bn_momentum
            mean_var.assign(m * mean_var + (1 - m) * mean)
            var_var.assign(m * var_var + (1 - m) * var)
            return y
        return (x - mean_var) * (scale * tf.math.rsqrt(var_var + self.bn_epsilon)) + offset

    def _logits(self, images: tf.Tensor, training: bool) -> tf.Tensor:
        x = tf.reshape(images, [-1, IMAGE_SHAPE[0], IMAGE_SHAPE[1], 1])
        x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, self.k1, strides=1, padding="SAME")), 2, 2, "VALID")
        x = self._norm(x, tf.ones_like(self.c1b), self.c1b, self.m1, self.v1, training)
        x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, self.k2, strides=1, padding="SAME")), 2, 2, "VALID")
        x = self._norm(x, self.g2, self.c2b, self.m2, self.v2, training)
        x = tf.reshape(x, [-1, 7 * 7 * self.c2])
        h = tf.nn.relu(tf.matmul(x, self.w1) + self.b1)
        return tf.matmul(h, self.w2) + self.b2

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Serving: the moving statistics, both batch norms folded into the layers around them.

        The same function as ``_logits(training=False)`` (to float rounding), in fewer ops. The
        first batch norm's scale s1 = 1/sqrt(v1 + eps) is positive, and ReLU and max pooling
        commute with a positive per-channel scale, so it multiplies the first kernel; its offset
        stays one add. The second batch norm is a per-channel affine map feeding the dense layer,
        so it becomes that layer's weights and bias (exactly). Measured (issue 20): with both batch
        norms as separate ops, the int8 TFLite model's mean logit error was 0.48 (verify's bound
        0.25) and its cosine 0.996 (bound 0.999); with the first one as a multiply and an add (and
        a trainable scale), the int8 files of 2 of 6 trained models missed the cosine bound (the
        requantized multiply and add were the largest loss: keeping them in float gained 0.0004);
        folded, 6 trained CNNs (seeds 0-3 at 12 epochs, 0-1 at 13) gave 0.99918-0.99970 for both int8 files.
        """
        s1 = tf.math.rsqrt(self.v1 + self.bn_epsilon)
        s2 = self.g2 * tf.math.rsqrt(self.v2 + self.bn_epsilon)
        # Flattening [7, 7, c2] row-major: feature f belongs to channel f % c2.
        s2_flat = tf.tile(s2, [7 * 7])
        o2_flat = tf.tile(self.c2b - self.m2 * s2, [7 * 7])
        w1 = self.w1 * s2_flat[:, None]
        b1 = self.b1 + tf.linalg.matvec(self.w1, o2_flat, transpose_a=True)
        x = tf.reshape(images, [-1, IMAGE_SHAPE[0], IMAGE_SHAPE[1], 1])
        x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, self.k1 * s1, strides=1, padding="SAME")), 2, 2, "VALID")
        x = x + (self.c1b - self.m1 * s1)
        x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, self.k2, strides=1, padding="SAME")), 2, 2, "VALID")
        x = tf.reshape(x, [-1, 7 * 7 * self.c2])
        h = tf.nn.relu(tf.matmul(x, w1) + b1)
        return tf.matmul(h, self.w2) + self.b2

    def training_logits(self, images: tf.Tensor) -> tf.Tensor:
        return self._logits(images, training=True)


def build_model(kind: ModelKind, hidden_units: int, seed: int) -> Classifier:
    """The network of ``kind`` (parsed by ``TrainConfig``; this trusts its type)."""
    return MLP(hidden_units, seed) if kind is ModelKind.MLP else CNN(hidden_units, seed)


def save_model(model: Classifier, directory: str) -> None:
    """Write a graph-mode SavedModel with the ``serving_default`` and ``labels`` signatures."""
    tf.saved_model.save(
        model,
        directory,
        signatures={SERVING_SIGNATURE: model.serve, LABELS_SIGNATURE: model.labels},
    )


def write_savedmodel(model: Classifier, root: Path) -> Artifact:
    """Save ``model`` atomically to ``root/saved_model`` and describe it for the manifest."""
    from edgefm.core.contract import OUTPUT_NAMES, SAVEDMODEL_DIRNAME
    from edgefm.core.fileio import atomic_directory
    from edgefm.core.manifest import Artifact, TensorSpec, tool_versions, utc_now

    target = Path(root) / SAVEDMODEL_DIRNAME
    with atomic_directory(target) as staging:
        try:
            save_model(model, str(staging))
        except tf.errors.OpError as e:  # a full disk: TF's error names no file, and would be exit 70
            from edgefm.core.errors import OutputError

            raise OutputError.from_failure(target, e) from e
    batch: list[int | None] = [None]
    return Artifact.describe(
        Path(root),
        target,
        format=SAVEDMODEL_FORMAT,
        quantization="none",
        inputs=[TensorSpec(INPUT_NAME, "float32", batch + list(IMAGE_SHAPE))],
        outputs=[TensorSpec(n, "float32", batch + [NUM_CLASSES]) for n in OUTPUT_NAMES],
        created=utc_now(),
        tools=tool_versions("tensorflow-cpu", "tensorflow"),
        extra={"signatures": [SERVING_SIGNATURE, LABELS_SIGNATURE], "parameters": model.parameter_count},
    )
