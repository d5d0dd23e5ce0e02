"""Measures: NPS, scales and their reliability, intervals, shrinkage, the unit × wave panel,
the internal-measures and data-quality tables, and privacy (suppression and the release).

Imports only ``analysis.data``.
"""
