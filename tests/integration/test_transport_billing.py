"""Billing safety at the edges of the wire: errors inside streams, and TLS failures before and after sending.

A billable POST may be resent only where it provably did not run. These tests count what actually arrived at
a server on 127.0.0.1: the emulator, or a small TLS server that breaks its record layer on purpose.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tenacity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import (
    OpenRouterConnectionError,
    OpenRouterOutcomeUnknownError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.transport import OpenRouterTransport, TransportSettings

CHAT = "POST /chat/completions"
LOOPBACK_NAME = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _chat(emulator: RunningEmulator, sleeps: list[float], **settings: Any) -> OpenRouterTransport:
    """A transport on the emulator that records the waits it asks for instead of sleeping through them."""
    options: dict[str, Any] = {"requests_per_minute": 0, **settings}
    config = TransportSettings("billing", emulator.base_url, emulator.api_key, **options)
    return OpenRouterTransport(config, tenacity_kwargs={"sleep": sleeps.append})


def _body(directive: str) -> dict[str, Any]:
    return {**BODY, "messages": [{"role": "user", "content": f"[[emulator: {directive}]] hi"}]}


@pytest.mark.parametrize("fault", ["mid_stream", "error_in_200"])
def test_an_error_event_inside_a_stream_was_not_billed_and_the_stream_is_not_resent(
    openrouter_emulator_clean: RunningEmulator, fault: str
) -> None:
    emulator = openrouter_emulator_clean
    with _chat(emulator, []) as transport, pytest.raises(OpenRouterUpstreamError) as caught:
        list(transport.stream("/chat/completions", _body(f"fault={fault}")))
    assert caught.value.in_body
    assert caught.value.billed is False  # OpenRouter's error envelope: zero-completion insurance, not charged
    # Events had already been handed to the caller, so the transport cannot resend; an Airflow retry may.
    assert emulator.stats()["requests"][CHAT] == {"200": 1}
    assert emulator.stats()["billed_generations"] == 0


@pytest.mark.parametrize("fault", ["error_in_200", "mid_stream", "empty_choices"])
def test_an_upstream_429_inside_a_200_is_resent_and_billed_once(
    openrouter_emulator_clean: RunningEmulator, fault: str
) -> None:
    emulator = openrouter_emulator_clean
    sleeps: list[float] = []
    with _chat(emulator, sleeps) as transport:
        answer = transport.post("/chat/completions", _body(f"fault={fault}, status=429, times=1"))
    assert answer["choices"][0]["message"]["content"]
    assert len(sleeps) == 1
    stats = emulator.stats()
    assert stats["requests"][CHAT] == {"200": 2}
    assert stats["billed_generations"] == 1 and stats["duplicate_billed"] == 0


def test_a_429_waits_for_retry_after_then_succeeds_billed_once(
    openrouter_emulator_clean: RunningEmulator,
) -> None:
    emulator = openrouter_emulator_clean
    sleeps: list[float] = []
    with _chat(emulator, sleeps) as transport:
        transport.post("/chat/completions", _body("fault=429, retry_after=7, times=1"))
    assert sleeps == [7.0]
    stats = emulator.stats()
    assert stats["requests"][CHAT] == {"429": 1, "200": 1}
    assert stats["billed_generations"] == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529, 408])
def test_an_error_status_with_the_envelope_is_resent_and_billed_once(
    openrouter_emulator_clean: RunningEmulator, status: int
) -> None:
    emulator = openrouter_emulator_clean
    with _chat(emulator, []) as transport:
        transport.post("/chat/completions", _body(f"fault={status}, times=1"))
    stats = emulator.stats()
    assert stats["requests"][CHAT] == {str(status): 1, "200": 1}
    assert stats["billed_generations"] == 1 and stats["duplicate_billed"] == 0


@pytest.mark.parametrize("directive", ["fault=524", "fault=error_in_200, status=524"])
def test_a_524_is_an_unknown_outcome_and_sent_once(
    openrouter_emulator_clean: RunningEmulator, directive: str
) -> None:
    emulator = openrouter_emulator_clean
    with _chat(emulator, []) as transport, pytest.raises(OpenRouterUpstreamError) as caught:
        transport.post("/chat/completions", _body(f"{directive}, times=1"))
    assert caught.value.status == 524 and caught.value.billed is None
    assert sum(emulator.stats()["requests"][CHAT].values()) == 1


def test_a_524_is_resent_when_the_connection_accepts_the_risk(
    openrouter_emulator_clean: RunningEmulator,
) -> None:
    emulator = openrouter_emulator_clean
    with _chat(emulator, [], retry_ambiguous=True) as transport:
        transport.post("/chat/completions", _body("fault=524, times=1"))
    assert emulator.stats()["requests"][CHAT] == {"524": 1, "200": 1}


@pytest.mark.parametrize("fault", ["reset", "truncate", "html"])
def test_a_lost_answer_is_sent_once_and_may_have_been_billed(
    openrouter_emulator_clean: RunningEmulator, fault: str
) -> None:
    emulator = openrouter_emulator_clean
    with _chat(emulator, []) as transport, pytest.raises(OpenRouterOutcomeUnknownError) as caught:
        transport.post("/chat/completions", _body(f"fault={fault}, times=1"))
    assert caught.value.billed is None
    assert sum(emulator.stats()["requests"][CHAT].values()) == 1
    assert emulator.stats()["billed_generations"] == 1  # the emulator ran and billed it: resending pays twice


class BrokenTlsServer:
    """Accepts TLS on 127.0.0.1, reads one whole HTTP request per connection, then breaks the TLS record layer
    (``answer_first``: after half an answer). ``received`` counts the requests that arrived in full."""

    def __init__(self, cert: Path, key: Path, *, answer_first: bool) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._answer_first = answer_first
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.received = 0
        self.handshake_failures = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting (shutdown wakes the blocked accept) and wait until every connection was handled."""
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the TLS test server did not stop"

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:  # shut down by close()
                return
            raw.settimeout(10)
            try:
                tls = self._context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                self.handshake_failures += 1
                raw.close()
                continue
            try:
                self._break_after_one_request(tls)
            except OSError:  # the client went away first
                pass
            finally:
                tls.close()

    def _break_after_one_request(self, tls: ssl.SSLSocket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
        length = int(next(value for name, value in headers.items() if name.lower() == b"content-length"))
        while len(body) < length:
            body += tls.recv(65536)
        self.received += 1
        if self._answer_first:
            tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{")
        # An application-data record no key can decrypt, written under the TLS layer.
        os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        while os.read(tls.fileno(), 65536):  # until the client gives up and closes
            pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(LOOPBACK_NAME, False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture(params=[False, True], ids=["before-the-answer", "mid-answer"])
def broken_tls_server(
    certificate: tuple[Path, Path], request: pytest.FixtureRequest
) -> Iterator[BrokenTlsServer]:
    server = BrokenTlsServer(*certificate, answer_first=request.param)
    yield server
    server.close()


def _transport(port: int) -> OpenRouterTransport:
    settings = TransportSettings(
        "tls", f"https://127.0.0.1:{port}/api/v1", "sk-or-v1-tls", max_retries=3, requests_per_minute=0
    )
    return OpenRouterTransport(settings, tenacity_kwargs={"wait": tenacity.wait_none()})


@pytest.mark.parametrize("stream", [False, True])
def test_a_tls_failure_after_the_request_arrived_is_an_unknown_outcome_and_sent_once(
    broken_tls_server: BrokenTlsServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    transport = _transport(broken_tls_server.port)
    with transport, pytest.raises(OpenRouterOutcomeUnknownError) as caught:
        if stream:
            list(transport.stream("/chat/completions", BODY))
        else:
            transport.post("/chat/completions", BODY)
    assert caught.value.billed is None
    assert broken_tls_server.received == 1


def test_a_rejected_certificate_is_never_sent_and_safe_to_retry(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    server = BrokenTlsServer(*certificate, answer_first=False)
    try:
        with _transport(server.port) as transport, pytest.raises(OpenRouterConnectionError) as caught:
            transport.post("/chat/completions", BODY)
    finally:
        server.close()
    assert caught.value.billed is False
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert server.received == 0
    assert server.handshake_failures == 4  # the first try and max_retries=3 retries, none of them sent
