"""People and credentials: users, sessions, personal API tokens, node tokens."""
