"""Attempt logs: ordered, sequence-numbered chunks streamed by agents, read by people."""
