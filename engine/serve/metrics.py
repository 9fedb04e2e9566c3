"""Prometheus metrics of one server process (``/metrics``), in a registry of their own (several
apps in one process, as in the tests, do not collide).

* ``ivos_http_requests_total{method, route, status}`` and ``ivos_http_request_seconds{method, route}``
  (route = the path template, ``/v1/images/{session_id}/clicks``: bounded label values);
* ``ivos_click_stage_ms{stage}``: the predictor's per-stage timings of every click
  (prepare, render, infer, post, crf, total);
* ``ivos_frame_ms``: propagated frames;
* ``ivos_sessions{kind}`` (in the store) and ``ivos_live_sessions{kind}`` (in memory);
* ``ivos_queue_depth{pool}``: work waiting or running in the request and job pools;
* ``ivos_jobs_total{kind, status}``: finished jobs.

With ``--workers N`` each worker process has its own numbers (a scrape reaches one of them).
"""
from __future__ import annotations

from typing import Callable

MS_BUCKETS = (1, 2.5, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000)
S_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The collectors. ``sessions`` / ``live`` / ``queues`` are callables read at scrape time."""

    def __init__(self, sessions: Callable[[], dict[str, int]], live: Callable[[], dict[str, int]],
                 queues: Callable[[], dict[str, int]]):
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client.core import GaugeMetricFamily

        self.registry = CollectorRegistry()
        self.requests = Counter("ivos_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("ivos_http_request_seconds", "HTTP request latency (s)", ["method", "route"],
                                 buckets=S_BUCKETS, registry=self.registry)
        self.click_stage = Histogram("ivos_click_stage_ms", "click latency per predictor stage (ms)", ["stage"],
                                     buckets=MS_BUCKETS, registry=self.registry)
        self.frame_ms = Histogram("ivos_frame_ms", "propagated frame latency (ms)", buckets=MS_BUCKETS,
                                  registry=self.registry)
        self.jobs = Counter("ivos_jobs", "finished jobs", ["kind", "status"], registry=self.registry)

        class _Gauges:
            def collect(self_inner):
                g = GaugeMetricFamily("ivos_sessions", "sessions in the store", labels=["kind"])
                for kind, n in sessions().items():
                    g.add_metric([kind], n)
                yield g
                g = GaugeMetricFamily("ivos_live_sessions", "sessions held in memory (LRU)", labels=["kind"])
                for kind, n in live().items():
                    g.add_metric([kind], n)
                yield g
                g = GaugeMetricFamily("ivos_queue_depth", "work waiting or running per pool", labels=["pool"])
                for pool, n in queues().items():
                    g.add_metric([pool], n)
                yield g

        self.registry.register(_Gauges())

    def click_timings(self, timings: dict[str, float]) -> None:
        for stage, ms in timings.items():
            self.click_stage.labels(stage.removesuffix("_ms")).observe(ms)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
