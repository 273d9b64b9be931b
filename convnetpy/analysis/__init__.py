"""The lecture's arithmetic as tools: ``summary``, ``check`` and the layer calculator."""

from .calc import conv_calc, parse_volume, pool_calc
from .check import check
from .summary import Summary, summary

__all__ = ["summary", "Summary", "check", "conv_calc", "pool_calc", "parse_volume"]
