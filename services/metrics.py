"""Prometheus metrics of query serving (one registry per ingress replica, no globals).

The ingress records everything: its own request latency, and the embed time, batch size and
per-source search times that the embedder and searcher report back with their answers. Scrape
``GET /metrics`` of the Serve HTTP address (docs/serving.md lists the targets).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram("priorsight_request_seconds", "HTTP request latency by endpoint",
                                         ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.embed_seconds = Histogram("priorsight_embed_seconds", "Query embedding time (model forward)",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.search_seconds = Histogram("priorsight_search_seconds", "ANN search time per source",
                                        ["source"], buckets=LATENCY_BUCKETS, registry=r)
        self.embed_batch_size = Histogram("priorsight_embed_batch_size",
                                          "Queries per embedder batch (dynamic batching)",
                                          buckets=BATCH_BUCKETS, registry=r)
        self.query_vectors = Histogram("priorsight_query_vectors", "Query vectors per search (views + words)",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.partial_results = Counter("priorsight_partial_results", "Searches answered without some source",
                                       registry=r)
        self.source_failures = Counter("priorsight_source_failures", "Failed or timed-out source searches",
                                       ["source"], registry=r)
        self.errors = Counter("priorsight_errors", "Requests answered with an error", ["endpoint", "kind"],
                              registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
