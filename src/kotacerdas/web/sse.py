"""What the server-sent-event streams share (the events' live stream, the sensors' live tiles): one connection's
bounded queue of frames, filled by a hub on the event loop and drained by the streaming response."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class FrameQueue:
    """One SSE connection's bounded queue of frames; closed when it overflows or the hub stops. A full queue means
    the client cannot keep up: the hub drops it and the browser reconnects, instead of memory growing."""

    __slots__ = ("closed", "limit", "_frames", "_waiter")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.closed = False
        self._frames: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None

    @property
    def idle(self) -> bool:
        return not self._frames

    def push(self, frame: bytes) -> bool:
        """Queue a frame; False when the queue is full (the hub then drops the stream)."""
        if self.closed:
            return True
        if len(self._frames) >= self.limit:
            return False
        self._frames.append(frame)
        self._wake()
        return True

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_frame(self) -> bytes | None:
        """The next frame to send, waiting for it; None once the stream must end."""
        while not self._frames and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.closed:
            return None
        return self._frames.popleft()


def end_streams_on_exit(close_streams: Callable[[], None]) -> Callable[[], None]:
    """Call `close_streams` as soon as the server is told to stop (SIGTERM, SIGINT), and return what undoes that.
    uvicorn waits for open responses before it runs the lifespan's shutdown, and a stream never ends by itself:
    without this, stopping a server with subscribers would hang until it is killed. The handler uvicorn installed
    still runs, after ours. Only the main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    installed: list[tuple[int, Any, Any]] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
            close_streams()
            previous(number, frame)

        signal.signal(signum, handler)
        installed.append((signum, previous, handler))

    def restore() -> None:
        for signum, previous, handler in installed:
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)

    return restore
