"""Locust load tests of the serving API (run as their own process, never imported by tests)."""
