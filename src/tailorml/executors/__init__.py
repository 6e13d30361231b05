"""Executors run sharded work: local processes by default, Ray for a cluster.

An executor only schedules: it calls one picklable function on a list of
tasks and returns the results in order. Resuming is the caller's business
(the data runner skips shards whose completion marker exists), so every
executor resumes the same way. Executors register as
``register("executor", name)``; ``get_executor`` builds one by name.
"""

from tailorml.executors.base import Executor, ShardFailedError, get_executor

__all__ = ["Executor", "ShardFailedError", "get_executor"]
