-- The audit trail: append-only, hash-chained per organisation, with signed checkpoints
-- and per-person keys for personal data. See docs/audit.md.

-- System-wide events (no organisation) form their own chain under a reserved
-- organisation row, so they travel the same RLS-bound path as every tenant's events and
-- no tenant can read them. procuhelp_audit::system_chain_org() returns this id.
INSERT INTO app.organisations (id, name)
VALUES ('00000000-0000-0000-0000-00000000a0d1', '(system audit chain)')
ON CONFLICT (id) DO NOTHING;

-- No foreign key to app.organisations: the trail outlives the organisation row (an
-- ON DELETE CASCADE would either be refused by the append-only trigger or erase the
-- evidence).
CREATE TABLE app.audit_events (
    org_id      uuid NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    at          timestamptz NOT NULL,
    actor_kind  text NOT NULL CHECK (actor_kind IN ('user', 'service_account', 'system')),
    actor_id    uuid,
    action      text NOT NULL,
    target      text,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    -- Canonical JSON, stored as the exact bytes that were hashed.
    context     text NOT NULL,
    request_id  text,
    -- Pseudonymous subject of the personal data, and the per-person key that seals it.
    subject     text,
    person_key  uuid,
    personal    bytea,
    prev_hash   bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (org_id, seq),
    CHECK ((personal IS NULL) = (person_key IS NULL))
);
CREATE INDEX audit_events_by_time ON app.audit_events (org_id, at);
CALL app.declare_tenant_table('app.audit_events');

-- Signed (org, seq, head hash, time) statements; Ed25519 over the encoding in
-- docs/audit.md. The public key travels with each row so an export is self-contained.
CREATE TABLE app.audit_checkpoints (
    org_id      uuid NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    head_hash   bytea NOT NULL CHECK (length(head_hash) = 32),
    at          timestamptz NOT NULL,
    public_key  bytea NOT NULL CHECK (length(public_key) = 32),
    signature   bytea NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (org_id, seq)
);
CALL app.declare_tenant_table('app.audit_checkpoints');

-- Append-only, for everybody: UPDATE, DELETE and TRUNCATE raise, whoever runs them.
-- ENABLE ALWAYS makes the triggers fire under session_replication_role = replica too;
-- only the table owner can switch them off (ALTER TABLE … DISABLE TRIGGER), and the hash
-- chain and signed checkpoints make what it then does detectable.
CREATE FUNCTION app.audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'PH423';
END $$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON app.audit_events
    FOR EACH ROW EXECUTE FUNCTION app.audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON app.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION app.audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON app.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION app.audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON app.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION app.audit_refuse_change();
ALTER TABLE app.audit_events ENABLE ALWAYS TRIGGER audit_events_append_only;
ALTER TABLE app.audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate;
ALTER TABLE app.audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_append_only;
ALTER TABLE app.audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_truncate;

-- The database itself refuses rows that do not extend their chain: seq 1 starts from 32
-- zero bytes, every other row names the hash of the row before it. With the primary key
-- this makes a fork or a gap impossible whatever a writer does; the writer still computes
-- the hashes (the database does not know the encoding), and verification re-checks them.
--
-- One check per INSERT statement, not per row: a statement-level AFTER trigger sees every
-- inserted row in the transition table `new_rows`. Inside the statement, each row must
-- follow the one before it (seq + 1, prev_hash = its hash) — one sort of the new rows, no
-- table access. The first new row of each chain must follow the stored row before it (its
-- head: any later row would have needed this seq) or GENESIS — one primary-key lookup per
-- chain per statement. Rows the same statement inserted are in the table by now, but the
-- row before the first new one is not among them.
--
-- SECURITY INVOKER (row-level security applies; tenant tables are never read by a
-- definer function). plan_cache_mode = force_custom_plan for the function only: the
-- runtime role defaults to force_generic_plan, and a generic plan of the head lookup
-- made while the table was small is a sequential scan kept for the connection's
-- lifetime (append time then grows with the table). A custom plan is planned with the
-- table's current size: an index lookup. Once per statement, the planning is noise.
CREATE FUNCTION app.audit_check_links() RETURNS trigger
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = force_custom_plan
    AS $$
DECLARE
    bad bigint;
    head record;
    prev bytea;
BEGIN
    FOR head IN
        SELECT DISTINCT ON (n.org_id) n.org_id, n.seq, n.prev_hash
        FROM new_rows n ORDER BY n.org_id, n.seq
    LOOP
        IF head.seq = 1 THEN
            prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        ELSE
            SELECT e.hash INTO prev FROM app.audit_events e
            WHERE e.org_id = head.org_id AND e.seq = head.seq - 1;
        END IF;
        IF prev IS DISTINCT FROM head.prev_hash THEN
            RAISE EXCEPTION 'audit chain link broken at seq %', head.seq USING ERRCODE = 'PH409';
        END IF;
    END LOOP;
    SELECT l.seq INTO bad FROM (
        SELECT n.seq, n.prev_hash,
               lag(n.seq) OVER w AS prev_seq, lag(n.hash) OVER w AS prev_row_hash
        FROM new_rows n
        WINDOW w AS (PARTITION BY n.org_id ORDER BY n.seq)
    ) l
    WHERE l.prev_seq IS NOT NULL
      AND (l.seq <> l.prev_seq + 1 OR l.prev_hash IS DISTINCT FROM l.prev_row_hash)
    ORDER BY l.seq
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'audit chain link broken at seq %', bad USING ERRCODE = 'PH409';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_events_link AFTER INSERT ON app.audit_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION app.audit_check_links();
ALTER TABLE app.audit_events ENABLE ALWAYS TRIGGER audit_events_link;

-- Per-person keys for the personal data in events, wrapped by the organisation's audit
-- KEK in the vault. Erasure sets `wrapped` to NULL: every event sealed under the key
-- becomes pseudonymous, while the ciphertext — and so the hash chain — stays intact.
CREATE TABLE app.audit_person_keys (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 128),
    kek_version integer,
    wrapped     bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    PRIMARY KEY (org_id, id),
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (kek_version IS NULL))
);
-- At most one live key per person; after erasure a returning person gets a new key.
CREATE UNIQUE INDEX audit_person_keys_live ON app.audit_person_keys (org_id, subject)
    WHERE erased_at IS NULL;
CALL app.declare_tenant_table('app.audit_person_keys');

-- Keys are erased (wrapped := NULL) or re-wrapped, never revived, renamed or deleted.
CREATE FUNCTION app.audit_person_key_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'audit person keys are never deleted (erase them)' USING ERRCODE = 'PH423';
    END IF;
    IF OLD.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'an erased audit person key stays erased' USING ERRCODE = 'PH423';
    END IF;
    IF NEW.org_id <> OLD.org_id OR NEW.id <> OLD.id OR NEW.subject <> OLD.subject
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'only wrapped, kek_version and erased_at may change' USING ERRCODE = 'PH423';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_person_keys_guard BEFORE UPDATE OR DELETE ON app.audit_person_keys
    FOR EACH ROW EXECUTE FUNCTION app.audit_person_key_change();
CREATE TRIGGER audit_person_keys_no_truncate BEFORE TRUNCATE ON app.audit_person_keys
    FOR EACH STATEMENT EXECUTE FUNCTION app.audit_refuse_change();
ALTER TABLE app.audit_person_keys ENABLE ALWAYS TRIGGER audit_person_keys_guard;
ALTER TABLE app.audit_person_keys ENABLE ALWAYS TRIGGER audit_person_keys_no_truncate;
