"""Everything about one model file format, in one module per format: identifiers, structure checks,
I/O specs, operator counts, embedded metadata. Reads files; runs no model.
"""
