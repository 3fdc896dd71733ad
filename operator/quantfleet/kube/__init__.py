"""Kubernetes I/O: the only layer of the operator that calls the API server. Handlers reach it
through `children` (owned objects and status), `custom_objects` (our kinds) and
`baseline_cache`; the CLI through `apply` and `nodes`; `errors` maps API failures for all."""
