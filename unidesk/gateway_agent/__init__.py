"""unidesk-agent, the Provider Gateway: dials out to the server and runs attempts in Docker.

Imports only ``unidesk.protocol``, ``unidesk.errors`` and its own modules, never ``unidesk.core``.
"""
