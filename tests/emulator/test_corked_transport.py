"""The emulator's corked transport: what one turn of the event loop writes leaves in one send, in order,
and nothing held is lost when the connection is closed, aborted or handed over."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_openrouter.emulator.__main__ import _CorkedTransport


class _Wire(asyncio.Transport):
    """What reached the socket: each send, and the close or abort that followed."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.events.append(bytes(data))

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0  # every send above went out whole


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _next_turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_the_head_and_body_of_an_answer_leave_in_one_send(loop: asyncio.AbstractEventLoop) -> None:
    wire = _Wire()
    corked = _CorkedTransport(wire, loop)
    corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    corked.write(bytearray(b"{}"))
    assert wire.events == []
    assert corked.get_write_buffer_size() == 40
    _next_turn(loop)
    assert wire.events == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    corked.write(b"next")
    _next_turn(loop)
    assert wire.events[1:] == [b"next"]


@pytest.mark.parametrize("end", ["close", "abort"])
def test_what_is_held_is_sent_before_the_connection_ends(loop: asyncio.AbstractEventLoop, end: str) -> None:
    wire = _Wire()
    corked = _CorkedTransport(wire, loop)
    corked.write(b"half an answ")
    getattr(corked, end)()
    _next_turn(loop)
    assert wire.events == [b"half an answ", end]


def test_what_is_held_when_the_client_has_left_is_dropped(loop: asyncio.AbstractEventLoop) -> None:
    wire = _Wire()
    corked = _CorkedTransport(wire, loop)
    corked.write(b"answer")
    wire.closing = True  # the connection was lost before the loop's next turn
    _next_turn(loop)
    assert wire.events == []
