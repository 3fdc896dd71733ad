"""What tests/serving measured (server start seconds and memory, greedy outputs), printed in
pytest's terminal summary so a run's report carries the figures docs/serving.md quotes."""

import pytest

MEASURED = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def measured(request: pytest.FixtureRequest) -> list[str]:
    """Lines for the report: append one per figure."""
    return request.config.stash.setdefault(MEASURED, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(MEASURED, [])
    if lines:
        terminalreporter.section("measured by tests/serving (real vLLM on this host's CPU)")
        for line in lines:
            terminalreporter.write_line(line)
