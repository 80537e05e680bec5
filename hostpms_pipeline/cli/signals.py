"""SIGTERM and SIGINT stop ``hostpms sync``/``resync`` within seconds, and say so in the exit code.

How a stop travels
------------------
Code that runs Dagster in-process (the demo's UI, tests) lets Dagster own SIGINT and
SIGTERM during a run: it notes the signal and raises ``DagsterExecutionInterruptedError``
inside the step's code at once, or at its next checkpoint otherwise, but it does not
cut short its own retry wait (a plain ``time.sleep`` of up to minutes). So:

- outside a run, our handler for both signals raises ``KeyboardInterrupt`` at once;
- every signal Python handles is also written to a wake-up pipe; a watcher thread
  reading it records the stop signal and, if nobody has acted on it within
  ``ESCALATE_AFTER_SECONDS`` (the run did not end), sends SIGUSR2, whose handler
  (Dagster leaves it alone) raises ``KeyboardInterrupt`` in the main thread: the
  retry wait ends and Dagster fails the run as interrupted;
- :func:`received` tells the CLI to stop before the next property (or the next run
  of the same property) and which exit code to use (128 + the signal).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from hostpms_pipeline import stopping

ESCALATE_AFTER_SECONDS = 2.0  # a stop signal not acted on by then is raised in the main thread
ESCALATION_SIGNAL = signal.SIGUSR2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_lock = threading.Lock()
_state: dict[str, object] = {"signal": None, "raised": False, "acknowledged": False, "more": 0}


def received() -> int | None:
    """The stop signal this process received, if any (asking counts as acting on it)."""
    with _lock:
        _state["acknowledged"] = True
        return _state["signal"]  # type: ignore[return-value]


def exit_code() -> int:
    with _lock:
        signo = _state["signal"]
    return 128 + signo if isinstance(signo, int) else 1


def name() -> str:
    with _lock:
        signo = _state["signal"]
    return signal.Signals(signo).name if isinstance(signo, int) else "a signal"


def _on_signal(signo: int, frame: object) -> None:
    """SIGTERM or SIGINT outside Dagster's runs, or our escalation: KeyboardInterrupt, once."""
    with _lock:
        if _state["signal"] is None and signo != ESCALATION_SIGNAL:
            _state["signal"] = signo
            stopping.ask()
        if _state["raised"]:
            # Already stopping: a third signal ends the process without waiting.
            _state["more"] = int(_state["more"]) + 1  # type: ignore[call-overload]
            if _state["more"] >= 2:  # type: ignore[operator]
                os._exit(128 + int(_state["signal"]))  # type: ignore[call-overload]
            return
        _state["raised"] = True
    raise KeyboardInterrupt(name())


def install() -> Callable[[], None]:
    """Install the handlers (main thread only); returns a function that removes them."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    stopping.forget()
    previous_term = signal.signal(signal.SIGTERM, _on_signal)
    previous_int = signal.signal(signal.SIGINT, _on_signal)
    previous_escalation = signal.signal(ESCALATION_SIGNAL, _on_signal)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    watcher = threading.Thread(
        target=_watch, args=(read_end,), name="hostpms-signal-watcher", daemon=True
    )
    watcher.start()

    def uninstall() -> None:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(ESCALATION_SIGNAL, previous_escalation)
        os.close(write_end)  # ends the watcher's read

    return uninstall


def _watch(read_end: int) -> None:
    """Record a stop signal whoever handled it; raise it in the main thread if nobody acts."""
    try:
        while True:
            data = os.read(read_end, 64)
            if not data:
                return
            signo = next((s for s in STOP_SIGNALS if s in data), None)
            if signo is None:
                continue
            with _lock:
                if _state["signal"] is None:
                    _state["signal"] = int(signo)
                    stopping.ask()
                _state["acknowledged"] = False
            deadline = time.monotonic() + ESCALATE_AFTER_SECONDS
            while time.monotonic() < deadline:
                with _lock:
                    if _state["raised"] or _state["acknowledged"]:
                        break
                time.sleep(0.05)
            else:
                os.kill(os.getpid(), ESCALATION_SIGNAL)
    except OSError:
        return
    finally:
        os.close(read_end)
