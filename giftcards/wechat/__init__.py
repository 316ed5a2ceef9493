"""WeChat card wallet sync: per-merchant accounts, the wechatpy client, card definitions and codes, the
outbox that keeps wallet balances equal to the ledger, and the event callbacks."""
