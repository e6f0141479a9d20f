-- Offboarding (issue #14, point 4): an organisation's rows are deleted and its keys
-- destroyed; what stays is this tombstone. Written only by the schema owner, in the same
-- transaction that deletes the rows. Its presence is also what lets the audit trail's
-- append-only triggers release that organisation's events (procuhelp-audit 0024), and
-- what lets a restore or drill leave out that organisation's part of an earlier backup.
CREATE TABLE app.offboarded_organisations (
    id              uuid PRIMARY KEY,
    data_region     text NOT NULL CHECK (data_region IN ('eu', 'uk', 'ch', 'us')),
    created_at      timestamptz NOT NULL,
    offboarded_at   timestamptz NOT NULL DEFAULT now(),
    -- Rows deleted per table: {"app.users": 12, ...}.
    deleted_rows    jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Set once the organisation's keys are gone from the vault (after the commit: a vault
    -- is not transactional); NULL means a rerun of `org offboard` must finish the job.
    keys_destroyed_at timestamptz
);
-- An organisation id is never reused: a tombstone blocks it.
CREATE FUNCTION app.refuse_offboarded_id() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM app.offboarded_organisations t WHERE t.id = NEW.id) THEN
        RAISE EXCEPTION 'organisation % was offboarded; its id is not reused', NEW.id
            USING ERRCODE = 'PH409';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER organisations_not_offboarded BEFORE INSERT ON app.organisations
    FOR EACH ROW EXECUTE FUNCTION app.refuse_offboarded_id();
