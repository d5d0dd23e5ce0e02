"""Models: the estimand registry, the linkage models (engagement → NPS), the churn hazard,
drivers, power, and ``estimate``, which fits every registered estimand.

Imports only ``analysis.data`` and ``analysis.measures``.
"""
