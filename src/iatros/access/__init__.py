"""Who may use the service and what they did: users with roles and care teams, API keys for
devices and hospital systems, signed access tokens, and the hash-chained audit log. Stored in
the registry's database (SQLite or PostgreSQL); `iatros.serve` and the CLI use it."""
