"""Process-wide state of a running operator: its API client and settings, set once at startup."""

from functools import cache

from kubernetes import client, config

from quantfleet.api.settings import OperatorSettings

# Kopf runs the (synchronous) handlers on this many threads; `startup` sets it and the API
# client's connection pool is sized from it.
MAX_WORKERS = 16

_settings = OperatorSettings()


@cache
def api_client() -> client.ApiClient:
    """The API client of this process (made once)."""
    return connect()


def connect() -> client.ApiClient:
    """A new API client: in-cluster credentials, else the kubeconfig; one pooled connection per
    handler thread, since a smaller pool discards connections under load ("Connection pool is
    full")."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = MAX_WORKERS
    return client.ApiClient(configuration)


def settings() -> OperatorSettings:
    return _settings


def configure(new: OperatorSettings) -> None:
    """Replace the settings (the CLI does this once, before Kopf starts)."""
    global _settings
    _settings = new
