"""Django's PostgreSQL backend with a client-side deadline on every round trip (ENGINE "config.db")."""
