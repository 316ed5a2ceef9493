"""The database: the connection pool, forward-only migrations, the embedded cluster, and leases for work that
waits on another service."""
