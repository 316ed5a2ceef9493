-- The ledger and the staff log are append-only: UPDATE, DELETE and TRUNCATE are refused, for code that
-- bypasses the application too (the tables: schema/migrations/0002 and 0003). One trigger function serves
-- both; each trigger passes the refusal's message and the constraint name it reports.

CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% (% refused)', TG_ARGV[0], TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_ARGV[1];
END $$;

CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_change('ledger entries are append-only', 'ledger_append_only');
CREATE OR REPLACE TRIGGER ledger_append_only_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('ledger entries are append-only', 'ledger_append_only');

CREATE OR REPLACE TRIGGER staff_log_append_only BEFORE UPDATE OR DELETE ON staff_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the staff log is append-only', 'staff_log_append_only');
CREATE OR REPLACE TRIGGER staff_log_append_only_truncate BEFORE TRUNCATE ON staff_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('the staff log is append-only', 'staff_log_append_only');

-- The functions these triggers called until issue 16, one per table.
DROP FUNCTION IF EXISTS ledger_refuse_change();
DROP FUNCTION IF EXISTS staff_log_refuse_change();
