"""Inside Out: does the way an organisation engages its staff show up in what its customers do?

The package is layered in the order the data flows; each layer imports only those above it here:

``data``      the contract, loading and validation, parameters, synthetic studies, result files
``measures``  NPS, scales, reliability, intervals, shrinkage, the unit × wave panel, privacy
``models``    the estimand registry, linkage, hazard, drivers, power; ``estimate`` fits them all
``report``    figures, sentences, and rendering the notebooks into pages
``studies``   studies of the kit itself: calibration and benchmark
"""

from pathlib import Path

__version__ = "0.1.0"

#: The checkout the package runs from: notebooks, the git commit and the folders it must not touch.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
