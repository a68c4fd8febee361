"""Alembic migrations, configured in code (``portal.migrations.config``) rather than an alembic.ini."""
