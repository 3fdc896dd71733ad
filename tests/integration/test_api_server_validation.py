"""The generated CRDs on a real kube-apiserver: they install, every sample is accepted and every
malformed manifest in tests/corpus/invalid/ is rejected with a message naming its field."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from quantfleet.cli.localrun import load_documents
from quantfleet.kube.apply import crd_established

from .helpers import REPO, crd_files, create_custom_object

pytestmark = pytest.mark.integration

SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
CORPUS = sorted((REPO / "tests" / "corpus" / "invalid").glob("*.yaml"))
FIELD_COMMENT = re.compile(r"^#\s*field:\s*(\S+)")


def expected_field(path: Path) -> str:
    """The field path the corpus file's first line names (`# field: spec.x.y`)."""
    match = FIELD_COMMENT.match(path.read_text().splitlines()[0])
    assert match, f"{path.name}: the first line must be `# field: <path>`"
    return match.group(1)


def error_message(error: client.ApiException) -> str:
    try:
        body: dict[str, Any] = json.loads(error.body)
    except (TypeError, ValueError):
        return str(error.body)
    return str(body.get("message", error.body))


def test_crds_install_and_become_established(
    api_client: client.ApiClient, installed_crds: dict[str, dict[str, Any]]
) -> None:
    want_names = {doc["metadata"]["name"] for path in crd_files() for doc in load_documents(path)}
    established = {name for name in want_names if crd_established(api_client, name)}

    assert want_names, "crds/ holds no CustomResourceDefinition"
    assert established == want_names


def test_every_sample_is_accepted(
    api_client: client.ApiClient, installed_crds: dict[str, dict[str, Any]], namespace: str
) -> None:
    samples = [(path.name, doc) for path in SAMPLES for doc in load_documents(path)]
    refused = []

    for name, doc in samples:
        try:
            create_custom_object(api_client, installed_crds, doc, namespace)
        except client.ApiException as error:
            refused.append(f"{name}: {error.status} {error_message(error)}")

    assert samples, "manifests/samples/ holds no custom resource"
    assert not refused, "samples refused by the API server:\n" + "\n".join(refused)


def test_every_malformed_manifest_is_rejected_naming_its_field(
    api_client: client.ApiClient, installed_crds: dict[str, dict[str, Any]], namespace: str
) -> None:
    wrong = []
    rejected = 0

    for path in CORPUS:
        field = expected_field(path)
        (doc,) = load_documents(path)
        try:
            create_custom_object(api_client, installed_crds, doc, namespace, dry_run=True)
        except client.ApiException as error:
            message = error_message(error)
            if error.status in (400, 422) and field in message:
                rejected += 1
            else:
                wrong.append(f"{path.name}: rejected ({error.status}) without {field}: {message}")
        else:
            wrong.append(f"{path.name}: accepted, but {field} is malformed")
    print(f"Rejected {rejected} of {len(CORPUS)} malformed manifests, each naming its field")

    assert CORPUS, "tests/corpus/invalid/ is empty"
    assert not wrong, f"{len(wrong)} of {len(CORPUS)} corpus files misjudged:\n" + "\n".join(wrong)
