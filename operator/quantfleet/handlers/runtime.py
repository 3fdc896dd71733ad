"""Process-wide state of a running operator: its API client and settings, set once at startup."""

from functools import cache

from kubernetes import client, config

from quantfleet.api.settings import OperatorSettings

_settings = OperatorSettings()


@cache
def api_client() -> client.ApiClient:
    """The API client of this process: in-cluster credentials, else the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def settings() -> OperatorSettings:
    return _settings


def configure(new: OperatorSettings) -> None:
    """Replace the settings (the CLI does this once, before Kopf starts)."""
    global _settings
    _settings = new
