"""The control bus: the append-only events table, its writer, and live subscriptions."""
