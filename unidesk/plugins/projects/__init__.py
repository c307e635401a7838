"""Project management plugin: projects, work items with dependencies, Gantt (being built)."""
