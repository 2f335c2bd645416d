"""Database: ORM models, engine/session factory and the Alembic upgrade entry point."""
