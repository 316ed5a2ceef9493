"""QR payloads a till can trust: their signing, the signing keys in the database, and the QR images.

A payload is signed, short-lived and bound to a card and its generation."""
