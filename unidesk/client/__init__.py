"""``unidesk``: the user's command-line client for the UniDesk HTTP API."""

__all__: list[str] = []
