"""SIGTERM and SIGINT stop ``hostpms sync``/``resync`` within seconds, and say so in the exit code.

How a stop travels
------------------
``hostpms sync`` runs Dagster in-process. During a run Dagster owns SIGINT: it notes
the signal and raises ``DagsterExecutionInterruptedError`` at its next checkpoint,
but it does not cut short a retry wait (a plain ``time.sleep``), and it does not
handle SIGTERM at all. So:

- SIGTERM (``timeout``, systemd, Kubernetes) gets a handler of ours that raises
  ``KeyboardInterrupt`` in the main thread at once, wherever it is: inside a step,
  Dagster fails the step and the run as interrupted; in a retry wait, the wait ends.
- SIGINT, whoever handles it, is also written by Python to a wake-up pipe; a watcher
  thread reading it re-sends SIGTERM, so Ctrl-C ends a retry wait just as quickly.
- :func:`received` tells the CLI whether to stop before the next property (or the
  next run of the same property) and which exit code to use (128 + the signal).

A page that was landing when the signal came either landed (its checkpoint moved
only if the write completed) or is fetched again next time: checkpoints move only
after a page is durably landed, and a batch's PostgreSQL transaction commits whole
or not at all.

Runs a killed process left behind
---------------------------------
``kill -9`` leaves the in-process run STARTED in the Dagster instance, where the
one-run-per-property limit would count it forever. Each run the CLI starts carries
its process id and host (:func:`run_tags`); :func:`fail_orphaned_runs`, called when
the CLI starts, marks failed every STARTED run whose process is gone. Runs launched
by the daemon are covered by Dagster's run monitoring (``run_monitoring`` in
``dagster.yaml``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import psutil

PID_TAG = "hostpms/cli_pid"
HOST_TAG = "hostpms/cli_host"

ESCALATE_AFTER_SECONDS = 2.0  # a SIGINT not acted on by then is made a SIGTERM

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
    """SIGTERM (and SIGINT outside Dagster's runs): raise KeyboardInterrupt once, at once."""
    with _lock:
        if _state["signal"] is None:
            _state["signal"] = signo
        if _state["raised"]:
            # Already stopping: a third signal ends the process without waiting.
            _state["more"] = int(_state["more"]) + 1  # type: ignore[call-overload]
            if _state["more"] >= 2:  # type: ignore[operator]
                os._exit(128 + int(_state["signal"]))  # type: ignore[call-overload]
            return
        _state["raised"] = True
    raise KeyboardInterrupt(signal.Signals(signo).name)


def install() -> Callable[[], None]:
    """Install the handlers (main thread only); returns a function that removes them."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous_term = signal.signal(signal.SIGTERM, _on_signal)
    previous_int = signal.signal(signal.SIGINT, _on_signal)
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
        os.close(write_end)  # ends the watcher's read

    return uninstall


def _watch(read_end: int) -> None:
    """A SIGINT that only Dagster noted (it waits for a checkpoint, and a retry wait is
    none) is made a SIGTERM if nobody acted on it within ``ESCALATE_AFTER_SECONDS``."""
    try:
        while True:
            data = os.read(read_end, 64)
            if not data:
                return
            if signal.SIGINT not in data:
                continue
            with _lock:
                if _state["signal"] is None:
                    _state["signal"] = signal.SIGINT
                _state["acknowledged"] = False
            deadline = time.monotonic() + ESCALATE_AFTER_SECONDS
            while time.monotonic() < deadline:
                with _lock:
                    if _state["raised"] or _state["acknowledged"]:
                        break
                time.sleep(0.05)
            else:
                os.kill(os.getpid(), signal.SIGTERM)  # _on_signal raises in the main thread
    except OSError:
        return
    finally:
        os.close(read_end)


# --- runs left STARTED -----------------------------------------------------------------------


def run_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def fail_orphaned_runs(instance) -> list[str]:
    """Mark failed every STARTED/STARTING run of a CLI process on this host that is gone."""
    from dagster import DagsterRunStatus, RunsFilter

    host = socket.gethostname()
    orphaned = []
    runs = instance.get_runs(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
            tags={HOST_TAG: host},
        )
    )
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or _alive(int(pid)):
            continue
        instance.report_run_failed(
            run, f"the hostpms process {pid} that ran it ended without finishing it"
        )
        orphaned.append(run.run_id)
    return orphaned


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
