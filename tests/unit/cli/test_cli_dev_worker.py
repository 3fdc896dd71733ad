"""`quantfleet dev worker`: finds its cluster, or says how to get one."""

import argparse
from pathlib import Path

import pytest

from quantfleet.cli import dev
from quantfleet.cli import main as cli_main


def test_worker_without_a_cluster_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)

    code = cli_main.main(["dev", "--state-dir", str(tmp_path), "worker", "--once"])

    assert code == 1
    assert "quantfleet dev up" in capsys.readouterr().err


def test_worker_options_reach_the_action() -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    dev.register(subparsers)
    args = parser.parse_args(
        ["dev", "worker", "--recovery", "95", "--namespace", "ns", "--interval", "0.1", "--once"]
    )

    assert args.run is dev.worker
    assert (args.recovery, args.namespace, args.interval, args.once) == (95.0, "ns", 0.1, True)
