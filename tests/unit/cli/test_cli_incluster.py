"""The operator's manifests as the real node runs them (cli.incluster.on_real_node)."""

from quantfleet.cli.incluster import OPERATOR_DEPLOYMENT, on_real_node
from quantfleet.cli.localrun import MANIFESTS, load_documents
from quantfleet.testbed.realnode import REAL_NODE_LABEL


def test_the_operator_runs_its_image_on_the_real_node_without_a_cpu_request() -> None:
    documents = on_real_node(
        load_documents(MANIFESTS / "operator.yaml"), "localhost/op:1", {"QUANTFLEET_X": "1"}
    )

    [deployment] = [d for d in documents if d["metadata"]["name"] == OPERATOR_DEPLOYMENT]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["nodeSelector"][REAL_NODE_LABEL] == "true"
    assert (container["image"], container["imagePullPolicy"]) == ("localhost/op:1", "Never")
    assert "cpu" not in container["resources"]["requests"]  # the node's 2 cores are the models'
    assert "memory" in container["resources"]["requests"]
    assert {"name": "QUANTFLEET_X", "value": "1"} in container["env"]
