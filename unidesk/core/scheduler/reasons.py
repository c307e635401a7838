"""Why a pending task waits: the machine-readable codes every interface shows.

no_node_fits           no online node could run it even when idle      detail: message
waiting_for_resources  some node could run it, none has room now;      reserved_node
                       ``ranked_ahead`` in the API counts tasks ahead
over_quota             its owner's or account's running work is at    message
                       a quota (a label quota: on every usable node)
held_for_reservation   it fits a node now, but that node is reserved   node
                       for a higher-ranked task it would delay
retry_backoff          an automatic retry waits until ``not_before``
"""

from __future__ import annotations

__all__ = [
    "HELD_FOR_RESERVATION",
    "NO_NODE_FITS",
    "OVER_QUOTA",
    "PENDING_REASONS",
    "RANKED_REASONS",
    "RETRY_BACKOFF",
    "WAITING_FOR_RESOURCES",
]

NO_NODE_FITS = "no_node_fits"
WAITING_FOR_RESOURCES = "waiting_for_resources"
OVER_QUOTA = "over_quota"
HELD_FOR_RESERVATION = "held_for_reservation"
RETRY_BACKOFF = "retry_backoff"
PENDING_REASONS = (
    NO_NODE_FITS,
    WAITING_FOR_RESOURCES,
    OVER_QUOTA,
    HELD_FOR_RESERVATION,
    RETRY_BACKOFF,
)
RANKED_REASONS = (WAITING_FOR_RESOURCES, HELD_FOR_RESERVATION)
"""Reasons of tasks that compete for capacity: ``ranked_ahead`` counts these."""
