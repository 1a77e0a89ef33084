"""Ctrl-C for the tests that start train.py: a process that outlives its Ctrl-C fails the test with its stacks."""
import os
import signal
import subprocess

import pytest


def start(cmd: list, **popen) -> subprocess.Popen:
    """Popen with text output and faulthandler on, so that `ctrl_c` can show where a process ignoring Ctrl-C hangs."""
    return subprocess.Popen(cmd, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"}, **popen)


def ctrl_c(proc: subprocess.Popen, timeout: float) -> tuple:
    """Send proc a SIGINT and return its (stdout, stderr) once it exits. After `timeout` seconds it gets a SIGABRT
    instead, and the test fails with what faulthandler writes: every thread's stack at the moment it was stuck."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate()
        pytest.fail(f"still running {timeout} s after Ctrl-C; its stacks, then the end of its output:\n"
                    f"{(err or '')[-6000:]}\n{(out or '')[-2000:]}")
