"""API tokens: per organisation, scoped, shown once, stored hashed."""
