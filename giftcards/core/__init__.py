"""What every layer uses: domain errors, ids, times, structured logs, sealing, idempotency, secret links.

Nothing here knows about cards, HTTP or a particular table beyond its own."""
