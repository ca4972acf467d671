"""The fair selector: a pass hands out at most FAIR_EVENTS ready sockets, and every ready
socket is served within a few passes (none starves behind a crowd)."""

from __future__ import annotations

import asyncio
import selectors
import socket

import pytest

from server.process.event_loop import FAIR_EVENTS, new_event_loop

pytestmark = pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll only")


def test_a_pass_hands_out_at_most_fair_events_and_all_get_their_turn():
    from server.process.event_loop import FairEpollSelector

    n = FAIR_EVENTS * 3 + 5
    pairs = [socket.socketpair() for _ in range(n)]
    selector = FairEpollSelector()
    try:
        for a, b in pairs:
            selector.register(a, selectors.EVENT_READ)
            b.send(b"x")  # every socket is readable, and stays so until read
        served: set[int] = set()
        passes = 0
        while len(served) < n and passes < 10:
            ready = selector.select(0)
            assert 0 < len(ready) <= FAIR_EVENTS
            served.update(key.fd for key, _events in ready)
            passes += 1
        assert len(served) == n, f"{n - len(served)} sockets never handed out in {passes} passes"
    finally:
        selector.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_the_loop_runs_on_it_and_serves_a_crowd():
    loop = new_event_loop()
    try:
        assert type(loop._selector).__name__ == "FairEpollSelector"  # type: ignore[attr-defined]

        async def crowd() -> int:
            got = 0
            pairs = [socket.socketpair() for _ in range(FAIR_EVENTS * 4)]
            for a, b in pairs:
                a.setblocking(False)
                b.send(b"ping")
            readers = [loop.sock_recv(a, 4) for a, _b in pairs]
            for data in await asyncio.gather(*readers):
                got += data == b"ping"
            for a, b in pairs:
                a.close()
                b.close()
            return got

        assert loop.run_until_complete(crowd()) == FAIR_EVENTS * 4
    finally:
        loop.close()
