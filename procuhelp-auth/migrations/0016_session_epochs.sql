-- Verified sessions, remembered safely (procuhelp_auth::session_read::VerifiedSessions).
--
-- A server may keep, for a few seconds, the answer `app.enter_session` gave for a token,
-- and then serve a read with one plain statement that only enters the organisation —
-- but only while nothing that answer depended on has changed. The user's *session
-- epoch* says so: every change that can take a verified session's access away (one of
-- the user's sessions revoked, shortened, deleted or re-staged; the user's role or
-- status changed or the user deleted; any elevation of the user created, changed or
-- removed) bumps it in the same transaction. `app.enter_session` now returns the epoch,
-- read in the same snapshot as the session and its user (the elevations are read later,
-- and anything committed in between bumped past it), and until when its answer holds by
-- the clock alone (the session's absolute and idle expiry, the next start or end of an
-- elevation). The remembered read compares the epoch in the same snapshot as its rows:
-- a change committed before the read began is always seen, on every server, with no
-- window and no message bus.
--
-- The bump is an upsert under the organisation's row-level security, so a change to
-- sessions, users or elevations made without entering the organisation fails instead of
-- skipping the bump (fail closed). Changes that cannot take access away do not bump: the
-- once-a-minute `last_seen_at` touch, and any change to a session not yet fully signed
-- in (it was never remembered). Every user has a row from their creation (users created
-- before this migration get theirs at their first full check); a missing row is never
-- "fresh". No foreign keys: a deleted user's (or organisation's) epoch must outlive it,
-- and the remembered read checks the organisation's row itself. An epoch only goes up.
-- The triggers fire also in replica mode (ENABLE ALWAYS), and TRUNCATE, which fires no
-- row trigger, is refused on the three tables.
CREATE TABLE app.session_epochs (
    org_id  uuid NOT NULL,
    user_id uuid NOT NULL,
    epoch   bigint NOT NULL CHECK (epoch > 0),
    PRIMARY KEY (org_id, user_id)
);
CALL app.declare_tenant_table('app.session_epochs');

-- TG_ARGV[0] names the column holding the user's id.
CREATE FUNCTION app.bump_session_epoch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    changed uuid[];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        changed := changed || (to_jsonb(OLD) ->> TG_ARGV[0])::uuid;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        changed := changed || (to_jsonb(NEW) ->> TG_ARGV[0])::uuid;
    END IF;
    INSERT INTO app.session_epochs AS x (org_id, user_id, epoch)
        SELECT CASE WHEN TG_OP = 'DELETE' THEN OLD.org_id ELSE NEW.org_id END, u, 1
        FROM (SELECT DISTINCT unnest(changed)) AS c(u)
        ON CONFLICT (org_id, user_id) DO UPDATE SET epoch = x.epoch + 1;
    RETURN NULL;
END $$;

CREATE FUNCTION app.session_epoch_only_rises() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.org_id <> OLD.org_id OR NEW.user_id <> OLD.user_id OR NEW.epoch <= OLD.epoch THEN
        RAISE EXCEPTION 'a session epoch only rises' USING ERRCODE = 'PH423';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER only_rises BEFORE UPDATE ON app.session_epochs FOR EACH ROW
    EXECUTE FUNCTION app.session_epoch_only_rises();

CREATE FUNCTION app.refuse_truncate_of_access() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE of % would bypass the session epochs: DELETE instead', TG_TABLE_NAME
        USING ERRCODE = 'PH423';
END $$;

CREATE TRIGGER session_epoch_on_change AFTER UPDATE ON app.sessions FOR EACH ROW
    WHEN (OLD.stage = 'full'
          AND (to_jsonb(OLD) - 'last_seen_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_seen_at'))
    EXECUTE FUNCTION app.bump_session_epoch('user_id');
CREATE TRIGGER session_epoch_on_delete AFTER DELETE ON app.sessions FOR EACH ROW
    WHEN (OLD.stage = 'full')
    EXECUTE FUNCTION app.bump_session_epoch('user_id');
CREATE TRIGGER session_epoch_on_change AFTER UPDATE ON app.users FOR EACH ROW
    WHEN ((OLD.role, OLD.status, OLD.org_id, OLD.id) IS DISTINCT FROM (NEW.role, NEW.status, NEW.org_id, NEW.id))
    EXECUTE FUNCTION app.bump_session_epoch('id');
CREATE TRIGGER session_epoch_on_insert AFTER INSERT ON app.users FOR EACH ROW
    EXECUTE FUNCTION app.bump_session_epoch('id');
CREATE TRIGGER session_epoch_on_delete AFTER DELETE ON app.users FOR EACH ROW
    EXECUTE FUNCTION app.bump_session_epoch('id');
CREATE TRIGGER session_epoch_on_change AFTER INSERT OR UPDATE OR DELETE ON app.elevations
    FOR EACH ROW EXECUTE FUNCTION app.bump_session_epoch('user_id');
ALTER TABLE app.sessions ENABLE ALWAYS TRIGGER session_epoch_on_change;
ALTER TABLE app.sessions ENABLE ALWAYS TRIGGER session_epoch_on_delete;
ALTER TABLE app.users ENABLE ALWAYS TRIGGER session_epoch_on_change;
ALTER TABLE app.users ENABLE ALWAYS TRIGGER session_epoch_on_insert;
ALTER TABLE app.users ENABLE ALWAYS TRIGGER session_epoch_on_delete;
ALTER TABLE app.elevations ENABLE ALWAYS TRIGGER session_epoch_on_change;
ALTER TABLE app.session_epochs ENABLE ALWAYS TRIGGER only_rises;
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON app.sessions
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_truncate_of_access();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON app.users
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_truncate_of_access();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON app.elevations
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_truncate_of_access();
ALTER TABLE app.sessions ENABLE ALWAYS TRIGGER no_truncate;
ALTER TABLE app.users ENABLE ALWAYS TRIGGER no_truncate;
ALTER TABLE app.elevations ENABLE ALWAYS TRIGGER no_truncate;

-- app.enter_session as in 0015, returning two more columns: ph_valid_until (the answer
-- holds until then by the clock) and ph_epoch (the user's session epoch, read with the
-- session). Same checks, same order, same refusals.
DROP FUNCTION app.enter_session(uuid, bytea, timestamptz, text[], boolean);
CREATE FUNCTION app.enter_session(
    org uuid, presented bytea, at timestamptz, holders text[], elevation_may_grant boolean,
    OUT ph_org uuid, OUT ph_session uuid, OUT ph_user uuid, OUT ph_stage text,
    OUT ph_amr text[], OUT ph_role text, OUT ph_elevation uuid,
    OUT ph_elevation_role text, OUT ph_elevation_expires_at timestamptz,
    OUT ph_valid_until timestamptz, OUT ph_epoch bigint)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    current_org uuid := app.current_org();
    s record;
    e record;
    effective text;
    elevations_until timestamptz;
BEGIN
    IF org IS NULL OR presented IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'no organisation, token or time given' USING ERRCODE = 'PH400';
    END IF;
    IF current_org IS NOT NULL AND current_org <> org THEN
        RAISE EXCEPTION 'this transaction already belongs to another organisation' USING ERRCODE = 'PH409';
    END IF;
    -- The tenant first: row-level security scopes every lookup below to this organisation.
    PERFORM set_config('procuhelp.org_id', org::text, true);

    -- The session and its user in one query; LEFT JOIN, so a missing user is told
    -- apart from a missing session (both refused).
    SELECT t.id, t.user_id, t.stage, t.amr, t.last_seen_at, t.idle_secs, t.expires_at,
           t.revoked_at, u.role, u.status,
           -- The user's session epoch, in this query's snapshot: each later query of this
           -- function takes a newer one, and whatever committed in between bumped past it.
           (SELECT x.epoch FROM app.session_epochs x
             WHERE x.org_id = org AND x.user_id = t.user_id) AS epoch
      INTO s
      FROM app.sessions t
      LEFT JOIN app.users u ON u.org_id = org AND u.id = t.user_id
      WHERE t.org_id = org AND t.token_hash = presented;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such session' USING ERRCODE = 'PHA01';
    END IF;
    IF s.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION 'session revoked' USING ERRCODE = 'PHA02';
    END IF;
    IF NOT s.expires_at > at THEN
        RAISE EXCEPTION 'session expired' USING ERRCODE = 'PHA03';
    END IF;
    IF NOT s.last_seen_at + make_interval(secs => s.idle_secs) > at THEN
        RAISE EXCEPTION 'session idle' USING ERRCODE = 'PHA04';
    END IF;
    IF s.status IS DISTINCT FROM 'active' THEN
        RAISE EXCEPTION 'user not active' USING ERRCODE = 'PHA05';
    END IF;
    -- The user's active elevations (usually none): one that ran out must have its
    -- expiry recorded first, by the transactional path (which marks it and writes the
    -- audit event before anything else happens); of those in force, the highest role
    -- counts, the latest to end among equals (as the transactional lookup orders them).
    FOR e IN SELECT y.id, y.role, y.starts_at, y.expires_at FROM app.elevations y
             WHERE y.org_id = org AND y.user_id = s.user_id AND y.state = 'active' LOOP
        IF e.expires_at <= at THEN
            RAISE EXCEPTION 'an elevation ran out: record its expiry first' USING ERRCODE = 'PHA08';
        END IF;
        -- The answer holds until the first elevation of the user starts or ends.
        elevations_until := least(elevations_until,
                                  CASE WHEN e.starts_at > at THEN e.starts_at ELSE e.expires_at END);
        IF e.starts_at <= at AND (ph_elevation IS NULL
                OR app.role_rank(e.role) < app.role_rank(ph_elevation_role)
                OR (e.role = ph_elevation_role AND e.expires_at > ph_elevation_expires_at)) THEN
            ph_elevation := e.id;
            ph_elevation_role := e.role;
            ph_elevation_expires_at := e.expires_at;
        END IF;
    END LOOP;

    -- The permission, as Principal::require decides it.
    IF s.stage <> 'full' THEN
        RAISE EXCEPTION 'second factor required' USING ERRCODE = 'PHA06';
    END IF;
    effective := s.role;
    IF ph_elevation IS NOT NULL AND app.role_rank(ph_elevation_role) < app.role_rank(s.role) THEN
        effective := ph_elevation_role;
    END IF;
    IF NOT effective = ANY (holders) THEN
        RAISE EXCEPTION 'permission denied' USING ERRCODE = 'PHA07';
    END IF;
    IF NOT s.role = ANY (holders) THEN
        IF NOT elevation_may_grant THEN
            RAISE EXCEPTION 'permission denied' USING ERRCODE = 'PHA07';
        END IF;
        RAISE EXCEPTION 'permission from an elevation: record its use first' USING ERRCODE = 'PHA08';
    END IF;

    -- The use, written at most once a minute (as the transactional lookup does): a read
    -- that writes nothing commits without waiting for a WAL flush.
    IF s.last_seen_at < at - interval '1 minute' THEN
        UPDATE app.sessions t SET last_seen_at = at
          WHERE t.org_id = org AND t.id = s.id AND t.last_seen_at < at - interval '1 minute';
        IF FOUND THEN
            s.last_seen_at := at;
        END IF;
    END IF;
    -- Least ignores NULL: no elevation, no bound from elevations.
    ph_valid_until := least(s.expires_at, s.last_seen_at + make_interval(secs => s.idle_secs),
                            elevations_until);

    ph_org := org;
    ph_session := s.id;
    ph_user := s.user_id;
    ph_stage := s.stage;
    ph_amr := s.amr;
    ph_role := s.role;
    ph_epoch := s.epoch;
    -- A user created before 0016 has no epoch yet: give them one (once), and answer
    -- without it, so this answer is not remembered; the next full check reads it.
    IF s.epoch IS NULL THEN
        INSERT INTO app.session_epochs (org_id, user_id, epoch) VALUES (org, s.user_id, 1)
            ON CONFLICT (org_id, user_id) DO NOTHING;
    END IF;
END $$;
