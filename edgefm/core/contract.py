"""The contract every stage shares: names of keys, signatures, files and the reference model's I/O.

One home per fact: a string another module needs (the serving signature's key,
the manifest's SavedModel key, a file name) is defined here and imported,
never spelled again. The C runners get the signature key on their command line.

The Fashion-MNIST model's own contract (class names, 28x28 input, the names
``images`` -> ``logits``/``probabilities``) lives here too until the manifest
carries any model's signature as data.
"""

from __future__ import annotations

from pathlib import Path

#: the SavedModel signature every stage converts, runs and compares
SERVING_SIGNATURE = "serving_default"
#: the SavedModel signature that returns the class names (edgefm-written models)
LABELS_SIGNATURE = "labels"
#: the manifest's artifact name of the SavedModel (the reference of every check)
SAVEDMODEL_KEY = "savedmodel"
#: artifact formats as the manifest records them
SAVEDMODEL_FORMAT, TFLITE_FORMAT, ONNX_FORMAT = "savedmodel", "tflite", "onnx"
#: formats that are deployed (checked by verify, run by the native runners)
DEPLOYABLE_FORMATS: tuple[str, ...] = (TFLITE_FORMAT, ONNX_FORMAT)

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE: tuple[int, int] = (28, 28)
INPUT_NAME = "images"
OUTPUT_NAMES: tuple[str, str] = ("logits", "probabilities")
INPUT_SCALING = "float32 in [0, 1] (uint8 pixel / 255), 28x28 grayscale, light item on dark background"

DEFAULT_ARTIFACTS = Path("artifacts")
SAVEDMODEL_DIRNAME = "saved_model"
MANIFEST_NAME = "manifest.json"
CHECKPOINT_DIRNAME = "checkpoints"
#: the training curves ``edgefm train`` writes beside the manifest (the page shows them when the history is missing)
CURVES_NAME = "training_curves.png"

#: what ``edgefm verify`` writes beside the manifest
REPORT_NAME = "verify-report.json"
