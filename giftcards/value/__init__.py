"""Value: cards, their codes, the ledger that is the one write path for money, redemption and the audit.

The rules about money live here and in the schema; nothing here knows HTTP."""
