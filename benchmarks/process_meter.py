"""Run a command and measure it whole: wall time, peak RSS of its process tree, CPU user/sys.

Peak RSS is sampled with psutil over the process and all its descendants (summed) every
``interval`` seconds, so a short spike between samples can be missed; CPU comes from the
kernel's rusage of the child and every descendant it waited for (``os.wait4``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measured:
    command: list[str]
    returncode: int
    wall: float
    peak_rss: int  # bytes, the process tree summed
    user: float
    sys: float
    stdout: str
    stderr: str


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(
    command: list[str],
    env: dict[str, str],
    log_dir: Path,
    name: str,
    *,
    interval: float = 0.05,
    timeout: float = 3600.0,
) -> Measured:
    """Run ``command`` to its end; its output goes to ``log_dir/name.{out,err}`` and is returned."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        began = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            try:
                process = psutil.Process(child.pid)
            except psutil.Error:
                return
            while not done.is_set():
                peak = max(peak, _tree_rss(process))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        killer.cancel()
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        command=command,
        returncode=child.returncode,
        wall=wall,
        peak_rss=peak,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )
