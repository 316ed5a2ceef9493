"""What every layer uses: domain errors, ids, times, structured logs, sealing keys and idempotency.

Nothing here knows about cards, HTTP or a particular table beyond its own."""
