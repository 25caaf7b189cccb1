"""redline: ecological red-line supervision engine.

The engine never imports a web framework; ``api/`` is a thin layer on top.
"""

__version__ = "0.1.0"
