"""Reject reasons, re-exported from `pipeline.contracts`, where new code imports them from."""

from pipeline.contracts import RejectReason  # noqa: F401 - re-export
