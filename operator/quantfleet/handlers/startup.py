"""Kopf settings, chosen on purpose; every non-default value says why."""

from typing import Any

import kopf

from quantfleet.api.common import GROUP
from quantfleet.handlers.runtime import MAX_WORKERS

# Kopf's finalizer, which its per-object timers put on every object until 2026-12-06; the
# reconciler takes it off any object that still carries it.
FINALIZER = f"{GROUP}/finalizer"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """When the operator starts, set how Kopf watches, stores progress and posts events."""
    # Watches can go silent without an error (a known Kopf failure mode behind some load
    # balancers), and the passes read what the watches keep (kube.cache), so a silent watch
    # would leave them stale: ask the server to end each watch after 2 minutes and give up on
    # the client side a little later, so a dead watch is replaced within 150 s (and resumes
    # from its last resourceVersion, so what it missed arrives). The cost is one request per
    # watched kind each 2 minutes, whatever the number of objects.
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.watching.connect_timeout = 30
    # Our own prefix for Kopf's annotations, not kopf.zalando.org. Progress lives in annotations
    # only: the CRD's structural schema would prune a `status.kopf` field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # One replica (Deployment strategy Recreate) and no peering objects to create or watch.
    settings.peering.standalone = True
    settings.peering.clusterwide = False
    # Events for each step, not Kopf's per-handler chatter.
    settings.posting.level = 30  # logging.WARNING
    # Handlers are synchronous (the kubernetes client); enough threads for many models at once
    # (the API client's connection pool has as many connections).
    settings.execution.max_workers = MAX_WORKERS
