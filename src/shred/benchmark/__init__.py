"""The comparison harness behind ``shred-ir bench``: every method on the very same degraded inputs.

>>> from shred.benchmark import BenchConfig, Benchmark
>>> bench = Benchmark(BenchConfig(n=4, tasks=["sr4"], methods=["pinv", "ddrm"]), "runs/a")
>>> results = bench.run()          # resumable; results.json, results.md, grids/

:mod:`.run` runs (and documents the run folder), :mod:`.report` reports, :mod:`.tasks` names the
degradations.
"""
from .report import report
from .files import hardware
from .run import BenchConfig, Benchmark, distributed
from .tasks import BENCH_TASK_NAMES, BenchTask, bench_tasks

DEFAULT_METHODS = ("pinv", "shred", "ddnm", "ddrm", "dps", "repaint", "dip", "shred-blind", "selfdeblur")

__all__ = ["report", "BenchConfig", "Benchmark", "distributed", "hardware", "BENCH_TASK_NAMES", "BenchTask",
           "bench_tasks", "DEFAULT_METHODS"]
