"""The project-wide guards in tests/conftest.py hold."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest


def test_non_loopback_connect_is_refused() -> None:
    refused = pytest.raises(ConnectionRefusedError, match=r"only connect to 127\.0\.0\.1")
    with socket.socket() as sock, refused:
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routable, and refused before any packet


def test_loopback_connect_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())


def test_a_run_with_no_tests_fails(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "test_nothing.py").write_text("# no tests here\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode not in (0, 5), result.stdout
    assert "no tests were collected" in result.stdout
