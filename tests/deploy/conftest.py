"""Prints the compose test's timings at the end of the run."""

from __future__ import annotations

import pytest

from tests.deploy.engine import TIMINGS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        steps = ", ".join(f"{step} {seconds:g} s" for step, seconds in TIMINGS.items())
        terminalreporter.write_line(f"compose test timings: {steps} (total {sum(TIMINGS.values()):.0f} s)")
