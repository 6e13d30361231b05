"""Prometheus metrics of one serving engine (prometheus-client), in its own registry.

Per request, the engine observes latency histograms (time to first token,
time per output token, end to end) and counts tokens and outcomes,
labelled by the base model and the model served on it (a fine-tune's
public id, or the base's own). What the schedulers are doing (running and
waiting requests, KV cache bytes, forward passes and the rows they carried,
adapter loads and evictions) is read from each loaded base's ``stats()``
when Prometheus scrapes, so the decoding loop pays nothing for it.

The registry is the engine's own, not prometheus-client's global one, so
two engines in one process (tests, a benchmark) do not mix their counts;
the platform serves it at ``/metrics`` beside its HTTP metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tailorml.serve.backend import BaseStats

# Seconds. Generation on a CPU ranges from tens of milliseconds to minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

_GAUGES = {
    "running": "Requests in the running batch.",
    "waiting": "Requests queued for a slot.",
    "kv_cache_bytes": "Bytes the KV cache holds now.",
    "kv_cache_budget_bytes": "Bytes the KV cache may take.",
    "adapters_resident": "LoRA adapters in memory on the base.",
}
_COUNTERS = {
    "decode_forwards": "Batched decoding forward passes.",
    "decode_rows": "Sequences carried by batched decoding passes (rows / passes = batch size).",
    "encode_forwards": "Embeddings and classification forward passes.",
    "encode_rows": "Inputs carried by embeddings and classification passes.",
    "adapter_loads": "LoRA adapters loaded onto the base.",
    "adapter_evictions": "LoRA adapters evicted from the base (least recently used).",
}


class ServeMetrics:
    """The engine's metric families; ``registry`` is what a /metrics route renders."""

    def __init__(self, bases: Callable[[], Iterable[tuple[str, BaseStats]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("base", "model")
        self.ttft = Histogram(
            "tailorml_time_to_first_token_seconds",
            "From a generation request's arrival to its first token.",
            labels, buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.tpot = Histogram(
            "tailorml_time_per_output_token_seconds",
            "Mean time between a generation's tokens after the first.",
            labels, buckets=TOKEN_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "tailorml_request_duration_seconds",
            "From a request's arrival to its last token or result.",
            (*labels, "kind"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "tailorml_prompt_tokens", "Prompt and input tokens processed.",
            (*labels, "kind"), registry=self.registry,
        )  # fmt: skip
        self.generated_tokens = Counter(
            "tailorml_generated_tokens", "Tokens generated.", labels, registry=self.registry
        )
        self.requests = Counter(
            "tailorml_engine_requests",
            "Requests the engine finished, by kind and outcome (ok, error, cancelled).",
            (*labels, "kind", "outcome"), registry=self.registry,
        )  # fmt: skip
        self.rejected = Counter(
            "tailorml_admission_rejected",
            "Requests refused with a 429 by admission control, by the bound they hit "
            "(model_queue, tenant_concurrency).",
            ("base", "reason"), registry=self.registry,
        )  # fmt: skip
        self.registry.register(_BaseStatsCollector(bases))


class _BaseStatsCollector(Collector):
    """Reads every loaded base's scheduler state when scraped."""

    def __init__(self, bases: Callable[[], Iterable[tuple[str, BaseStats]]]) -> None:
        self._bases = bases

    def describe(self) -> list[Metric]:
        return []  # collected on scrape only; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        gauges = {
            name: GaugeMetricFamily(f"tailorml_{name}", doc, labels=["base"])
            for name, doc in _GAUGES.items()
        }
        counters = {
            name: CounterMetricFamily(f"tailorml_{name}", doc, labels=["base"])
            for name, doc in _COUNTERS.items()
        }
        for base, stats in self._bases():
            for field in fields(stats):
                value = float(getattr(stats, field.name))
                family = gauges.get(field.name) or counters[field.name]
                family.add_metric([base], value)
        yield from gauges.values()
        yield from counters.values()
