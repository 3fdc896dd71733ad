"""Kopf handlers: importing this package registers them (`kopf run -m quantfleet.handlers`)."""

from quantfleet.handlers import benchmarkrun, quantizedmodel, startup

__all__ = ["benchmarkrun", "quantizedmodel", "startup"]
