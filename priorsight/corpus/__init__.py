"""Corpus readers (USPTO design grants, DeepPatent2, plain folders) and corpus statistics."""
