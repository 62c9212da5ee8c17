"""Prometheus metrics of one server: notifications, jobs, syncs, provider calls, latencies."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Gauges(Collector):
    """Values read from the database when scraped, so every process reports the shared truth."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        for name, value in self.read().items():
            yield GaugeMetricFamily(f"calsync_{name}", name.replace("_", " "), value=value)


class Metrics:
    """One registry per app, so several apps in one process (tests, demo) never collide."""

    def __init__(self, gauges: Callable[[], dict[str, float]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.notifications = Counter(
            "calsync_notifications", "Push notifications received", ["outcome"], registry=r
        )
        self.webhook_seconds = Histogram(
            "calsync_webhook_seconds",
            "Time to acknowledge a push notification",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.jobs = Counter("calsync_jobs", "Sync jobs finished", ["state"], registry=r)
        self.syncs = Counter("calsync_syncs", "Syncs run", ["kind", "status"], registry=r)
        self.sync_seconds = Histogram(
            "calsync_sync_seconds",
            "Duration of one calendar's sync",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
            registry=r,
        )
        self.provider_calls = Counter(
            "calsync_provider_calls", "Provider API calls (batch parts count one each)", registry=r
        )
        self.provider_retries = Counter(
            "calsync_provider_retries", "Provider calls retried", registry=r
        )
        self.errors = Counter(
            "calsync_errors", "Errors by where they happened", ["where"], registry=r
        )
        r.register(_Gauges(gauges))
        # Each outcome's counter, looked up once (labels() validates and locks every time).
        self._notification_outcomes: dict[str, Counter] = {}

    def notification(self, outcome: str) -> None:
        """Count one push notification by its outcome."""
        counter = self._notification_outcomes.get(outcome)
        if counter is None:
            counter = self._notification_outcomes[outcome] = self.notifications.labels(outcome)
        counter.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
