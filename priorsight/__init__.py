"""PriorSight: language-informed, distribution-aware prior-art search over patent drawings."""

__version__ = "0.1.0"
