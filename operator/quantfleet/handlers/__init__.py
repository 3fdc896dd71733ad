"""Kopf handlers: importing this package registers them (`kopf run -m quantfleet.handlers`)."""

from quantfleet.handlers import benchmarkrun, nodes, quantizedmodel, startup, watched

__all__ = ["benchmarkrun", "nodes", "quantizedmodel", "startup", "watched"]
