"""Ray jobs and cluster wiring: bulk description, embedding and indexing jobs on Ray Data."""
