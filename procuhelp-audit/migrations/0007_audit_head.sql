-- The audit writer's first statement in a transaction: take the organisation's chain
-- lock, then read the chain head and the live person keys of the events' subjects.
--
-- One prepared call instead of four simple-protocol statements, so the server parses
-- and plans nothing per append but the two lookups below. VOLATILE: under READ
-- COMMITTED every statement of a volatile function takes a fresh snapshot, so the two
-- reads start after the lock was granted and see the previous lock holder's commit.
-- SECURITY INVOKER: row-level security applies to both reads (the caller's tenant only).
-- enable_seqscan = off for the function only: its plans are cached for the connection
-- (planning them at every call cost more than running them), and a cached plan of the
-- head lookup made while the table was small could be a sequential scan kept for the
-- connection's lifetime. With sequential scans priced out, the cached plan is the
-- primary-key index scan whatever the table's size when it was made.
-- synchronous_commit is forced on for the transaction: an acknowledged event is durable.
CREATE FUNCTION app.audit_chain_head(org uuid, lock_key integer, subjects text[])
    RETURNS TABLE (seq bigint, hash bytea, subject text, key_id uuid,
                   kek_version integer, wrapped bytea)
    LANGUAGE plpgsql VOLATILE
    SET enable_seqscan = off
    AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    -- 1095058505 = 0x41554449 ("AUDI"), the audit chain lock class.
    PERFORM pg_advisory_xact_lock(1095058505, lock_key);
    RETURN QUERY
        SELECT e.seq, e.hash, NULL::text, NULL::uuid, NULL::integer, NULL::bytea
        FROM app.audit_events e
        WHERE e.org_id = org
        ORDER BY e.seq DESC
        LIMIT 1;
    IF cardinality(subjects) > 0 THEN
        RETURN QUERY
            SELECT NULL::bigint, NULL::bytea, k.subject, k.id, k.kek_version, k.wrapped
            FROM app.audit_person_keys k
            WHERE k.org_id = org AND k.erased_at IS NULL AND k.subject = ANY (subjects);
    END IF;
END $$;


-- The writer's fast path: it sealed and hashed a batch against the head it predicted
-- (the head after its own last append) and sends the INSERT at once, guarded by
-- `WHERE (SELECT app.audit_head_is(...))`. This takes the chain lock and returns true
-- only if the chain's head is the predicted one and every person key the batch was
-- sealed with is still live; otherwise the INSERT inserts nothing and the writer falls
-- back to app.audit_chain_head. Reads after the lock with fresh snapshots (VOLATILE),
-- under RLS (INVOKER), with cached plans (see app.audit_chain_head).
CREATE FUNCTION app.audit_head_is(org uuid, lock_key integer, head_seq bigint,
                                  head_hash bytea, key_ids uuid[])
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET enable_seqscan = off
    AS $$
DECLARE
    cur_seq  bigint;
    cur_hash bytea;
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    PERFORM pg_advisory_xact_lock(1095058505, lock_key);
    SELECT e.seq, e.hash INTO cur_seq, cur_hash
    FROM app.audit_events e
    WHERE e.org_id = org
    ORDER BY e.seq DESC
    LIMIT 1;
    IF cur_seq IS NULL THEN
        cur_seq := 0;
        cur_hash := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    IF cur_seq <> head_seq OR cur_hash <> head_hash THEN
        RETURN false;
    END IF;
    IF cardinality(key_ids) > 0 AND (
        SELECT count(*) FROM app.audit_person_keys k
        WHERE k.org_id = org AND k.erased_at IS NULL AND k.id = ANY (key_ids)
    ) <> cardinality(key_ids) THEN
        RETURN false;
    END IF;
    RETURN true;
END $$;

-- The link trigger, cheaper and as strict (replaces 0006's body; same refusals, same
-- messages). One hash join of the new rows with themselves finds, without sorting, the
-- rows whose predecessor is not among them (the first new row of each chain, and any
-- row after a gap) and the rows that do not name their predecessor's hash. A valid
-- statement yields exactly one row per chain: its first new row, which must follow the
-- stored row before it (or GENESIS), read by app.audit_hash_at.
--
-- app.audit_hash_at: the hash of one stored row, with a cached plan that must be the
-- primary-key lookup whatever the table's size when it was made. Sequential scans are
-- priced out, and the lookup is written as "the last row at or before seq": only the
-- primary key (org_id, seq) serves that order, whereas a plain equality on seq can tie
-- with the (org_id, at) index in a generic plan made on a small table and then filter
-- every row of the organisation (measured: 30 ms per append at 300k events).
CREATE FUNCTION app.audit_hash_at(org uuid, at_seq bigint) RETURNS bytea
    LANGUAGE plpgsql VOLATILE
    SET enable_seqscan = off
    AS $$
BEGIN
    RETURN (SELECT CASE WHEN e.seq = at_seq THEN e.hash END
            FROM app.audit_events e
            WHERE e.org_id = org AND e.seq <= at_seq
            ORDER BY e.seq DESC
            LIMIT 1);
END $$;

CREATE OR REPLACE FUNCTION app.audit_check_links() RETURNS trigger
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    r     record;
    seen  uuid[] := '{}';
    prev  bytea;
BEGIN
    FOR r IN
        SELECT n.org_id, n.seq, n.prev_hash, (p.seq IS NULL) AS first
        FROM new_rows n LEFT JOIN new_rows p ON p.org_id = n.org_id AND p.seq = n.seq - 1
        WHERE p.seq IS NULL OR n.prev_hash IS DISTINCT FROM p.hash
        ORDER BY n.org_id, n.seq
    LOOP
        IF NOT r.first OR r.org_id = ANY (seen) THEN
            -- A wrong prev_hash inside the statement, or a second first row: a gap.
            RAISE EXCEPTION 'audit chain link broken at seq %', r.seq USING ERRCODE = 'PH409';
        END IF;
        seen := seen || r.org_id;
        IF r.seq = 1 THEN
            prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
        ELSE
            prev := app.audit_hash_at(r.org_id, r.seq - 1);
        END IF;
        IF prev IS DISTINCT FROM r.prev_hash THEN
            RAISE EXCEPTION 'audit chain link broken at seq %', r.seq USING ERRCODE = 'PH409';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
