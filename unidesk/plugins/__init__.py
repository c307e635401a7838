"""User-facing modules, each a pluggy plugin the core can run without."""
