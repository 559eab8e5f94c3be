"""A model edgefm did not train, for docs/guides/your-model.md: a Keras CNN on 32x32 RGB images.

Trained (2 epochs, ~1 minute on 2 cores) on Fashion-MNIST padded to 32x32 and repeated to three
channels, so it runs here without a download. It writes, in the current directory:
cnn.keras, calibration.npz (500 training images), test.npz and test_labels.npy (the test split),
labels.txt and boot.png. The model rescales its own inputs (a Rescaling layer): it takes pixels in [0, 255].

    python examples/keras_cnn.py
"""

from pathlib import Path

import keras
import numpy as np
from PIL import Image

from edgefm.core.contract import CLASS_NAMES
from edgefm.data.fashion_mnist import load_split


def split(name: str) -> tuple[np.ndarray, np.ndarray]:
    s = load_split(name)
    x = np.pad(s.images, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[..., None], 3, axis=-1), s.labels  # uint8 [N, 32, 32, 3], labels


(xtr, ytr), (xte, yte) = split("train"), split("test")
keras.utils.set_random_seed(0)
inp = keras.Input((32, 32, 3), name="image")
x = keras.layers.Rescaling(1 / 255)(inp)
for f in (16, 32):
    x = keras.layers.Conv2D(f, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
x = keras.layers.Flatten()(x)
out = keras.layers.Dense(10, name="logits")(x)
model = keras.Model(inp, out)
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.fit(xtr.astype("float32"), ytr, epochs=2, batch_size=128, verbose=2)
model.save("cnn.keras")
rng = np.random.default_rng(0)
np.savez("calibration.npz", image=xtr[rng.choice(len(xtr), 500, replace=False)].astype("float32"))
np.savez("test.npz", image=xte.astype("float32"))
np.save("test_labels.npy", yte.astype("int64"))
Path("labels.txt").write_text("".join(f"{name}\n" for name in CLASS_NAMES))
Image.fromarray(xte[0]).save("boot.png")  # the first test image (an ankle boot), for `edgefm predict`
