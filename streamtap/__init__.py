"""Shared by every streamtap service: settings, the record schema, Kafka and S3 client helpers.

Nothing here knows about a particular service; services depend on this package, never the
other way round.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
