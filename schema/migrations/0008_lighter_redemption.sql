-- was sha256 bad9d073d796d695a64ef9f359cb84238ba9f6daf147e07f413ce0f9576a767e
-- (as applied until its functions and triggers moved to schema/functions/: ledger, redemption)
-- Less work per redemption inside PostgreSQL, where most of a redemption's time goes (bench/README.md).
--
-- 1. Redemptions go in batches: redeem_requests takes several (arrays, one element each) and runs them
--    one after the other in one statement, so one transaction and one commit serve them all. Under load
--    the commit (WAL flush and the waits around it) is a large share of a redemption's cost; batches form
--    only when requests queue up (giftcards/quick_redeem.py), a lone one still goes at once.
-- 2. redeem_request checks the credential, the terminal's limits and the signing key in one SELECT and no
--    longer looks the card up before posting: post_activity finds it, or answers card_not_found /
--    invalid_code having written nothing, and the request goes the general way.
-- 3. The deferred balance check reads the card and its last entry in one statement.
-- 4. staff_log's foreign key to merchants goes: its foreign key to terminals already names the merchant
--    (terminals -> stores -> merchants), and every terminal's redemption was taking a share lock on the
--    one merchant row all tills have in common.

ALTER TABLE staff_log DROP CONSTRAINT staff_log_merchant_id_fkey;
