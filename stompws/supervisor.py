"""The reconnect supervisor: one thread that brings a lost client back, by a ``Reconnect`` policy.

It knows nothing of the client: it is given ``try_once`` (try every URL once; None when the
client is connected again or wants no connection any more, else the last error) and
``gave_up`` (the policy ran out of attempts). It waits before each try by the policy, never
runs in a listener, never recurses, and never dies of an unexpected exception: a bug in an
attempt is logged and counted as a failed try, so the client cannot stay RECONNECTING for
ever with nobody trying.

A loss that comes while the supervisor is finishing (a connection lost right after its
CONNECTED) asks for one more round instead of a second thread: at most one supervisor
thread runs per client.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

from .reconnect import Reconnect

__all__ = ["Supervisor"]

logger = logging.getLogger("stompws.client")
_numbers = itertools.count(1)


class Supervisor:
    def __init__(
        self,
        policy: Reconnect,
        try_once: Callable[[], BaseException | None],
        gave_up: Callable[[int, BaseException | None], None],
    ) -> None:
        self.policy = policy
        self._try_once = try_once
        self._gave_up = gave_up
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._again = False

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def ensure_running(self) -> None:
        """Start supervising (after a loss), or ask the running supervisor for another round."""
        with self._lock:
            if self._stop.is_set():
                return
            if self._thread is not None:
                self._again = True
                return
            thread = threading.Thread(
                target=self._run, name=f"stompws-reconnect-{next(_numbers)}", daemon=True
            )
            self._thread = thread
        thread.start()

    def stop(self) -> None:
        """No more tries; a wait between tries ends at once. Final."""
        self._stop.set()

    def join(self, deadline: float) -> bool:
        """Wait for the supervisor thread (not when called from it); False if it still runs."""
        with self._lock:
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(max(deadline - time.monotonic(), 0.0))
        return not thread.is_alive()

    @property
    def on_supervisor_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def _run(self) -> None:
        while True:
            try:
                self._supervise()
            except BaseException:  # never leave the client reconnecting with nobody trying
                logger.exception("reconnect supervisor failed")
            with self._lock:
                if not self._again or self._stop.is_set():
                    self._thread = None
                    return
                self._again = False

    def _supervise(self) -> None:
        tries = 0
        last: BaseException | None = None
        for delay in self.policy.delays():
            logger.info("reconnect attempt %d in %.2f s", tries + 1, delay)
            if self._stop.wait(delay):
                return
            tries += 1
            try:
                last = self._try_once()
            except Exception as error:  # a bug of ours: count the try as failed, go on
                logger.exception("reconnect attempt failed unexpectedly")
                last = error
            if last is None:
                return
        if not self._stop.is_set():
            self._gave_up(tries, last)
