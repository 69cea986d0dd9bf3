"""Exporter: watch -> sanitize -> write -> commit -> push."""
