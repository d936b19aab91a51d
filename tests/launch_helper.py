"""Runs shred-ir commands one after another in one process, for torchrun in test_torchrun.py:
``python launch_helper.py restore ... -- bench ...``.

With ``SHRED_TEST_KILL=restore`` (or ``bench``) and ``SHRED_TEST_KILL_RANK=R``, process R kills
itself (SIGKILL: no clean-up, as a crashed node) right after its first batch of that command is
written, so that the test can check what a rerun finishes.
"""
import os
import signal
import sys

from shred.cli import main


def _die_after(cls, name):
    original = getattr(cls, name)

    def wrapped(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(cls, name, wrapped)


if os.environ.get("RANK") == os.environ.get("SHRED_TEST_KILL_RANK"):
    kill = os.environ.get("SHRED_TEST_KILL")
    if kill == "restore":
        from shred.folders import FolderRestore
        _die_after(FolderRestore, "run_batch")
    elif kill == "bench":
        from shred.benchmark.run import Benchmark
        _die_after(Benchmark, "run_chunk")

commands, current = [], []
for arg in sys.argv[1:]:
    if arg == "--":
        commands.append(current)
        current = []
    else:
        current.append(arg)
commands.append(current)
status = 0
for argv in commands:
    status = max(status, main(argv))
sys.exit(status)
