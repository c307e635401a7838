"""Git on the server: resolving a branch or tag to the commit a task is pinned to."""
