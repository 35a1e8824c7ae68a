"""Prometheus metrics of the service."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector


class Metrics:
    """The service's metrics on a registry of their own (one per app)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.leases = Counter(
            "calltrack_leases_granted",
            "Tracking numbers handed out, new leases and renewals.",
            ["pool", "kind"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "calltrack_fallbacks_served",
            "Fallback numbers served instead of a tracking number, by reason.",
            ["pool", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "calltrack_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

        self.calls = Counter(
            "calltrack_calls_recorded",
            "Calls recorded, by attribution method.",
            ["attribution"],
            registry=self.registry,
        )
        self.voice_deferred = Counter(
            "calltrack_voice_events_deferred",
            "Webhook events queued in memory because the database did not answer in time.",
            ["kind"],
            registry=self.registry,
        )
        self.voice_lost = Counter(
            "calltrack_voice_events_lost",
            "Queued webhook events given up (queue full, shutdown, replay error).",
            ["kind"],
            registry=self.registry,
        )
        self.voice_pending = Gauge(
            "calltrack_voice_events_pending",
            "Webhook events waiting for the database.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.callbacks = Counter(
            "calltrack_callbacks_queued",
            "Callback requests queued, by their first state (queued or scheduled).",
            ["state"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Exposition text; with several worker processes, their sum."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
