"""The report: figures, sentences, and rendering the notebooks into HTML pages.

Imports the layers below it (``data``, ``measures``, ``models``), never ``studies``.
"""
