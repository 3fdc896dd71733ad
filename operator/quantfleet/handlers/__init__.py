"""Kopf handlers: importing this package registers them (`kopf run -m quantfleet.handlers`)."""

from quantfleet.handlers import quantizedmodel, startup

__all__ = ["quantizedmodel", "startup"]
