"""producers

Importing the package first decides whether the engine's modules load compiled or as pure
Python (``producers._native``), before any of them is imported.
"""

from producers._native import activate as _activate_native

_activate_native()
