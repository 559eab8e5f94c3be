"""Data sources: the Fashion-MNIST release (locate, fetch, parse, verify) and image files."""
