"""xpnet's version: a leaf that the package, the command line and the versions report read."""

__version__ = "0.1.0"
