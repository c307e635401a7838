"""Database access: declarative base, engine, embedded PostgreSQL, migrations."""
