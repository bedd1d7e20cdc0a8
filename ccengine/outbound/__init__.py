"""Outbound dialler: callbacks, complaint follow-ups and surveys (issue 6, docs/outbound.md)."""
