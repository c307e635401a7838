"""Large-file store: one ObjectStore interface, local and s3 backends, artifacts API."""
