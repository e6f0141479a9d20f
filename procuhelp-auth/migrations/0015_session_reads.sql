-- One-round-trip authenticated reads (procuhelp_auth::session_read):
--
--   SELECT q.*, tenant.* FROM app.enter_session($1, $2, $3, $4, $5)
--          AS tenant(org, ph_session, …)
--   LEFT JOIN LATERAL (SELECT i.*, true AS ph_row FROM (<read, referencing tenant.org>) i)
--          AS q ON true
--
-- Sent as one autocommit statement: validating the session, entering its organisation,
-- checking the permission and the read itself are one round trip. The function does what
-- session_store::authenticate and Principal::require do, in the same order and with the
-- same conditions, and refuses with an exception (so no row of the read is ever returned)
-- when any of them fails. Every refusal has its own SQLSTATE, so the server can log the
-- cause; they all reach the client as the same 401 (or 403 for a missing permission).
--
--   PHA01 no session with this token in this organisation (unknown token, another
--         organisation's token, unknown organisation: row-level security sees nothing)
--   PHA02 revoked                       PHA03 past its absolute lifetime
--   PHA04 idle for longer than allowed  PHA05 its user is disabled
--   PHA06 the session is not fully signed in (second factor or enrolment pending): 403
--   PHA07 the role in force does not hold the permission: 403
--   PHA08 the request must take the transactional path, because something has to be
--         recorded in the audit trail first: an elevation that ran out (its expiry), or a
--         permission only an elevation grants (its use). Nothing is changed; the caller
--         falls back to a tenant transaction that records the event before reading.
--
-- `holders` is the list of roles that hold the permission (from the matrix in
-- procuhelp_auth::Permission, the single source); `elevation_may_grant` whether an
-- elevation may grant it. `at` is the caller's clock, as for the transactional lookup.
-- Most privileged first, as procuhelp_auth::Role orders them.
CREATE FUNCTION app.role_rank(role text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE role WHEN 'admin' THEN 0 WHEN 'approver' THEN 1
                           WHEN 'requester' THEN 2 WHEN 'read_only' THEN 3 END $$;

CREATE FUNCTION app.enter_session(
    org uuid, presented bytea, at timestamptz, holders text[], elevation_may_grant boolean,
    OUT ph_org uuid, OUT ph_session uuid, OUT ph_user uuid, OUT ph_stage text,
    OUT ph_amr text[], OUT ph_role text, OUT ph_elevation uuid,
    OUT ph_elevation_role text, OUT ph_elevation_expires_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    current_org uuid := app.current_org();
    s record;
    e record;
    effective text;
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
           t.revoked_at, u.role, u.status
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
    END IF;

    ph_org := org;
    ph_session := s.id;
    ph_user := s.user_id;
    ph_stage := s.stage;
    ph_amr := s.amr;
    ph_role := s.role;
END $$;
