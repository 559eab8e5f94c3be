"""One runtime interface (``base.Runtime``) and its implementations: TensorFlow, LiteRT, ONNX Runtime."""
