"""The secret store: encrypted values, scopes, task references, and masking of their values."""
