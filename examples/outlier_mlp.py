"""An int8 failure to explain and repair, for docs/guides/when-verify-fails.md: a Keras MLP with an outlier channel.

A 784-32-32-10 MLP trained for 2 epochs on 10,000 Fashion-MNIST images (seconds), then given an
outlier channel, as trained networks sometimes grow on their own: hidden unit j of ``fc2`` scaled
by 300 and ``fc3``'s weights from it by 1/300. ReLU is positively homogeneous, so the float model
computes exactly the same function, but int8 shares one range per activation tensor: fc2's output
range grows 300-fold and its other 31 units fall to a few quantization steps. It writes, in the
current directory: outlier.keras, calibration.npz (500 training images), test.npz and
test_labels.npy (1,000 test images).

    python examples/outlier_mlp.py
"""

import keras
import numpy as np

from edgefm.data.fashion_mnist import load_split

OUTLIER = 300.0

train, test = load_split("train"), load_split("test")
x, y = train.scaled()[:10_000], train.labels[:10_000].astype("int64")
keras.utils.set_random_seed(0)
inp = keras.Input((28, 28), name="images")
h = keras.layers.Flatten()(inp)
h = keras.layers.Dense(32, activation="relu", name="fc1")(h)
h = keras.layers.Dense(32, activation="relu", name="fc2")(h)
model = keras.Model(inp, keras.layers.Dense(10, name="fc3")(h))
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, epochs=2, batch_size=128, verbose=0)

fc1, fc2, fc3 = (model.get_layer(n) for n in ("fc1", "fc2", "fc3"))
w2, b2 = fc2.get_weights()
w3, b3 = fc3.get_weights()
hidden = np.maximum(np.maximum(x[:500].reshape(-1, 784) @ fc1.get_weights()[0] + fc1.get_weights()[1], 0) @ w2 + b2, 0)
j = int(np.argmax(hidden.mean(0)))  # the busiest unit of fc2: its range will dominate
w2[:, j] *= OUTLIER
b2[j] *= OUTLIER
w3[j, :] /= OUTLIER
fc2.set_weights([w2, b2])
fc3.set_weights([w3, b3])

model.save("outlier.keras")
np.savez("calibration.npz", images=x[:500])
np.savez("test.npz", images=test.scaled()[:1000])
np.save("test_labels.npy", test.labels[:1000].astype("int64"))
print(f"outlier.keras: unit {j} of fc2 scaled by {OUTLIER:g} (the float function is unchanged)")
