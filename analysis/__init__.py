"""Inside Out: does the way an organisation engages its staff show up in what its customers do?"""

__version__ = "0.1.0"
