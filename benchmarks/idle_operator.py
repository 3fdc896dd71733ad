"""A do-nothing Kopf operator watching QuantizedModels: the baseline of operator_scale.py."""

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # The same storage and peering choices as quantfleet's, so only the reconciler differs.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="idle.test")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="idle.test")
    settings.peering.standalone = True


@kopf.on.event("quantfleet.io", "v1alpha1", "quantizedmodels")
def seen(**_: Any) -> None:
    """Watch every QuantizedModel event and do nothing with it."""
