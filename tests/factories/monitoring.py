"""The Grafana dashboard's queries and the metric names each one reads (parsed as PromQL)."""

import json

import promql_parser

from quantfleet.cli.localrun import CHART

DASHBOARD = CHART / "files" / "dashboard.json"


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: its panels' and its variables'."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variables = dashboard["templating"]["list"]
    queries += [v["query"].removeprefix("label_values(").split(",")[0] for v in variables
                if v["type"] == "query"]  # fmt: skip
    return queries


def metric_names(query: str) -> set[str]:
    """The metric names the query's selectors read."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(query), pre_visit=visit)
    return names


def dashboard_metrics(prefix: str) -> set[str]:
    """The metric names starting with `prefix` that the dashboard reads."""
    return {n for q in dashboard_queries() for n in metric_names(q) if n.startswith(prefix)}
