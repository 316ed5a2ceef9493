-- Bulk issuance writes 100,000 `issue` entries in one statement. For an issue entry the chain check only
-- asks that balance_after equal amount, yet it cost a PL/pgSQL call per entry; the WHEN clause now skips
-- the call for exactly the entries it would have passed. Every other entry is checked as before.
DROP TRIGGER ledger_chain ON ledger_entries;
CREATE TRIGGER ledger_chain BEFORE INSERT ON ledger_entries
    FOR EACH ROW WHEN (NEW.kind <> 'issue' OR NEW.balance_after <> NEW.amount)
    EXECUTE FUNCTION ledger_check_chain();
