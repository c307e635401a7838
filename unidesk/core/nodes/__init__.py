"""The node registry: compute nodes, their resources, state and heartbeats."""
