"""Data in and files out: the contract, loading and validation, parameters, synthetic studies,
the result files, the kit's own output folders and the provenance manifest.

The lowest layer: it imports nothing else from ``analysis``.
"""
