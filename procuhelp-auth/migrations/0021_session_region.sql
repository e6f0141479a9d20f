-- app.enter_session as in 0016, refusing an organisation of another region than the
-- deployment's (0020; PHA09, answered as an unknown session): a session opened before the
-- deployment's region changed is not served either. Same checks otherwise, same order.
CREATE OR REPLACE FUNCTION app.enter_session(
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
    -- An organisation of another region than the deployment's is not served (0020).
    -- (An unknown organisation has no session: PHA01 below, as before.) No deployment row
    -- serves nothing.
    IF EXISTS (SELECT 1 FROM app.organisations o WHERE o.id = org)
       AND NOT EXISTS (SELECT 1 FROM app.organisations o
                       JOIN app.deployment d ON d.region = o.data_region WHERE o.id = org) THEN
        RAISE EXCEPTION 'organisation not served in this region' USING ERRCODE = 'PHA09';
    END IF;

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
