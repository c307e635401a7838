"""Provider ingress: the WebSocket every node's agent dials, and what the server does with its
frames."""
