"""``edgefm verify``: tolerances, comparison, the report (data), its renderers, and ``check``."""
