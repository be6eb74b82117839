"""Run the emulator as a subprocess from Python: ``with running_emulator() as emulator: ...``.

The emulator runs in its own process, so a test exercises real HTTP on 127.0.0.1 and the emulator's work never
competes with the test for the GIL. Only the standard library is used here: the admin calls go through urllib.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

DEFAULT_API_KEY = "sk-or-emulator-test"
DEFAULT_MANAGEMENT_KEY = "sk-or-mgmt-emulator-test"
_LISTENING = "listening on "
# Admin calls must reach 127.0.0.1 directly, whatever HTTP(S)_PROXY the environment sets.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorStartError(RuntimeError):
    """The emulator process did not print its listening line; the message carries its stderr."""


@dataclass
class RunningEmulator:
    """A running emulator process and the ways to reach it."""

    base_url: str  # http://127.0.0.1:PORT/api/v1
    api_key: str
    management_key: str
    process: subprocess.Popen[bytes]

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/api/v1")

    def conn_uri(self, conn_type: str = "openrouter", **extras: Any) -> str:
        """A JSON connection value for ``AIRFLOW_CONN_<ID>``: this emulator with its inference key."""
        return json.dumps(
            {"conn_type": conn_type, "host": self.base_url, "password": self.api_key, "extra": extras}
        )

    def airflow_conn_env(self, conn_id: str = "openrouter_default", **extras: Any) -> dict[str, str]:
        """``{"AIRFLOW_CONN_OPENROUTER_DEFAULT": <conn_uri>}``, for ``os.environ`` or a subprocess env."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.conn_uri(**extras)}

    def stats(self, *, billed_by_identity: bool = False) -> dict[str, Any]:
        """``GET /__emulator/stats``; ``billed_by_identity`` adds the billed count per idempotency key or
        batch custom_id."""
        return self._admin("GET", "/__emulator/stats" + ("?billed_by=identity" if billed_by_identity else ""))

    def generations(self) -> list[dict[str, Any]]:
        """Every generation's ``id``, ``session_id``, ``metadata`` and ``trace``, as its request sent them."""
        return self._admin("GET", "/__emulator/stats?generations=attribution")["generations"]

    def reset(self) -> None:
        """Clear usage, generations, batches, stats and limits, and restore the startup settings."""
        self._admin("POST", "/__emulator/reset", {})

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings live (names as the CLI flags in snake_case); returns all settings now in force."""
        return self._admin("POST", "/__emulator/config", settings)["settings"]

    def update_model(self, model_id: str, **fields: Any) -> dict[str, Any]:
        """Change a catalog model while running: ``fields`` are merged into its ``GET /models`` object (e.g.
        ``pricing={"prompt": "0.000001"}``, ``context_length=64000``); returns the object as listed now."""
        return self._admin("PATCH", f"/__emulator/models/{model_id}", fields)["data"]

    def remove_model(self, model_id: str) -> None:
        """Take a model out of the catalog: requests naming it fail as for an unknown model."""
        self._admin("DELETE", f"/__emulator/models/{model_id}")

    def add_model(self, model: dict[str, Any]) -> dict[str, Any]:
        """Add a model from a full ``GET /models`` object (id and pricing required); returns it as listed."""
        return self._admin("POST", "/__emulator/models", model)["data"]

    def _admin(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.root_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _opener.open(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ValueError(f"emulator {method} {path} answered {exc.code}: {detail}") from None


def _option_value(cli_args: tuple[str, ...], flag: str) -> str | None:
    for index, arg in enumerate(cli_args):
        if arg == flag and index + 1 < len(cli_args):
            return cli_args[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _read_listening_line(process: subprocess.Popen[bytes], deadline: float, stderr: IO[bytes]) -> str:
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EmulatorStartError(f"the emulator did not start in time; stderr: {_tail(stderr)}")
            if selector.select(timeout=remaining):
                chunk = os.read(fd, 4096)
                if not chunk:
                    process.wait(timeout=5)
                    raise EmulatorStartError(
                        f"the emulator exited with code {process.returncode} before listening; "
                        f"stderr: {_tail(stderr)}"
                    )
                buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith(_LISTENING):
        raise EmulatorStartError(
            f"unexpected first line from the emulator: {line!r}; stderr: {_tail(stderr)}"
        )
    return line[len(_LISTENING) :].strip()


def _tail(stderr: IO[bytes]) -> str:
    stderr.flush()
    stderr.seek(0)
    return stderr.read()[-2000:].decode(errors="replace").strip() or "(empty)"


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout``. Returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextlib.contextmanager
def running_emulator(*cli_args: str, startup_timeout: float = 30.0) -> Iterator[RunningEmulator]:
    """Start ``python -m airflow_provider_openrouter.emulator --port 0 *cli_args``; SIGTERM it at exit.

    ``api_key`` is the first ``--api-key`` given, else ``sk-or-emulator-test``; ``management_key`` is
    ``sk-or-mgmt-emulator-test``. Raises EmulatorStartError (with the process's stderr) if it does not start.
    """
    command = [sys.executable, "-m", "airflow_provider_openrouter.emulator", "--port", "0", *cli_args]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL)
        try:
            base_url = _read_listening_line(process, time.monotonic() + startup_timeout, stderr)
            yield RunningEmulator(
                base_url=base_url,
                api_key=_option_value(cli_args, "--api-key") or DEFAULT_API_KEY,
                management_key=DEFAULT_MANAGEMENT_KEY,
                process=process,
            )
        finally:
            stop_process(process)
            if process.stdout is not None:
                process.stdout.close()
