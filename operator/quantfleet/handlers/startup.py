"""Kopf settings, chosen on purpose; every non-default value says why."""

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import kopf

from quantfleet.api.common import GROUP
from quantfleet.handlers.runtime import MAX_WORKERS

# Kopf's finalizer, which its per-object timers put on every object until 2026-12-06; the
# reconciler takes it off any object that still carries it.
FINALIZER = f"{GROUP}/finalizer"


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: the operator registers no change handlers (on.create, on.update, ...;
    its passes are level-based), yet Kopf builds one, a deep copy of the body, for every watch
    event of every kind it watches."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """When the operator starts, set how Kopf watches, stores progress, posts events and runs
    the passes."""
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
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = FINALIZER
    # One replica (Deployment strategy Recreate) and no peering objects to create or watch.
    settings.peering.standalone = True
    settings.peering.clusterwide = False
    # Events for each step, not Kopf's per-handler chatter.
    settings.posting.level = 30  # logging.WARNING
    # The passes are synchronous (the kubernetes client) and run on threads, handed over by
    # handlers that are coroutines (asyncio.to_thread): one pool, Kopf's, with enough threads
    # for many models at once (the API client's connection pool has as many connections).
    settings.execution.max_workers = MAX_WORKERS
    asyncio.get_running_loop().set_default_executor(settings.execution.executor)
