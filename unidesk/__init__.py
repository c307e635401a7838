"""UniDesk: a distributed work platform (server core, plugins, and the node agent)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
