"""The plugin system: the manager factory, the typed facade the core calls, plugin info."""
