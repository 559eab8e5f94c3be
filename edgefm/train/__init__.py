"""``edgefm train``: the Fashion-MNIST networks, their configs, the trainer and its progress output."""
