"""``edgefm verify --explain``: the layer where an export parts from TensorFlow.

``graphs`` taps every intermediate tensor of each side (TensorFlow's frozen serving
graph, LiteRT with all tensors preserved, ONNX Runtime with every node output made a
graph output of an in-memory copy), ``match`` pairs the tensors across formats (by TF
name, through (de)quantize ops, else by graph position and shape, never by guess),
``stats`` reduces each pair batch by batch, and ``explain`` orders them along the graph
and names the first one out of its variant's bound.
"""
