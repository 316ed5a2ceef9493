"""`giftcards audit`: every card's balance checked against the sum of its ledger, from outside the rules.

The schema already refuses a mismatch at commit; this is the independent check an auditor runs, and it
also verifies each entry's running balance, so a history that was tampered with shows up too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

_CHECK = """
WITH sums AS (
    SELECT merchant_id, card_id, sum(amount) AS total, count(*) AS entries,
           count(*) FILTER (WHERE running IS DISTINCT FROM balance_after) AS broken_links
      FROM (SELECT merchant_id, card_id, amount, balance_after,
                   sum(amount) OVER (PARTITION BY merchant_id, card_id ORDER BY id) AS running
              FROM ledger_entries) AS entries
     GROUP BY merchant_id, card_id
)
SELECT c.merchant_id, c.id, c.balance, s.total, coalesce(s.entries, 0) AS entries,
       coalesce(s.broken_links, 0) AS broken_links
  FROM cards c LEFT JOIN sums s ON s.merchant_id = c.merchant_id AND s.card_id = c.id
"""


@dataclass
class AuditReport:
    cards: int = 0
    entries: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        head = f"audited {self.cards} card(s), {self.entries} ledger entries: "
        if self.ok:
            return head + "every balance equals the sum of its ledger"
        return head + f"{len(self.mismatches)} MISMATCH(ES)\n" + "\n".join(self.mismatches)


async def audit_balances(conn: asyncpg.Connection) -> AuditReport:
    report = AuditReport()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(_CHECK, prefetch=5000):
            report.cards += 1
            report.entries += row["entries"]
            if row["total"] != row["balance"]:
                report.mismatches.append(
                    f"{row['merchant_id']}/{row['id']}: balance {row['balance']}, "
                    f"ledger sums to {row['total']}"
                )
            elif row["broken_links"]:
                report.mismatches.append(
                    f"{row['merchant_id']}/{row['id']}: {row['broken_links']} entries whose balance_after "
                    "is not the running sum"
                )
    return report
