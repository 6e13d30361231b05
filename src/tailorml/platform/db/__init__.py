"""Database: SQLAlchemy models, engine set-up, Alembic migrations."""
