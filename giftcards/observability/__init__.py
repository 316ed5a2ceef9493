"""What the service tells its operators about itself: Prometheus metrics, added up over its server processes.

It imports no other giftcards module, so that every layer may count what it does."""
