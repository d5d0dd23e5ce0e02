"""Counters inside long steps: drawn on a real terminal, absent from pipes, logs and CI.

The command runs under a pseudo-terminal (``pty``), as a user's shell runs it, and through a
pipe, as CI and a log file see it.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.data import progress
from tests.conftest import PROJECT_ROOT


def _estimate(data: Path, out: Path, params: Path, terminal: bool, env: dict) -> tuple[int, str]:
    """Run ``python -m analysis estimate``; its exit status and everything it wrote to stderr."""
    command = [sys.executable, "-m", "analysis", "estimate", "--data", str(data)]
    command += ["--out", str(out), "--params", str(params)]
    if not terminal:
        result = subprocess.run(command, capture_output=True, cwd=PROJECT_ROOT, env=env)
        return result.returncode, result.stderr.decode()
    leader, follower = pty.openpty()
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=PROJECT_ROOT,
        env=env,
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        status = process.wait()
    os.close(leader)
    return status, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def params(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("bootstrap_draws: 3000\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_terminal_sees_counters_and_a_pipe_or_ci_does_not(small_study_master, tmp_path, params):
    quiet_env = {k: v for k, v in os.environ.items() if k != "CI"}
    status, shown = _estimate(small_study_master, tmp_path / "a", params, True, quiet_env)
    assert status == 0, shown
    assert "bootstrap draws: 3,000/3,000 (100%)" in shown
    assert "jackknife groups:" in shown and "\x1b[2K" in shown  # drawn, then erased
    for terminal, env in ((False, quiet_env), (True, {**quiet_env, "CI": "true"})):
        status, said = _estimate(small_study_master, tmp_path / "b", params, terminal, env)
        assert status == 0, said
        # (a terminal turns each newline into \r\n, so look for the counter and its erasing)
        assert "bootstrap draws:" not in said and "\x1b[2K" not in said
        assert "driver importance" in said  # the step lines are still there


def test_counting_draws_nothing_until_asked(tmp_path):
    log = (tmp_path / "log.txt").open("w+")
    progress.stop_showing()
    with progress.counting("draws", 10) as done:
        for _ in range(10):
            done()
    assert not progress.show_on_terminal(log)  # a file is not a terminal
    with progress.counting("draws", 10) as done:
        done(10)
    log.seek(0)
    assert log.read() == ""
