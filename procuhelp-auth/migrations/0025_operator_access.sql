-- Operators' access to an organisation's data (issue #16 point 7): a named operator's
-- grant, with its reason, for a bounded time; recorded in that organisation's own audit
-- trail (where its admins read it) by the same transaction that writes the grant.
CREATE TABLE app.operator_grants (
    org_id      uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    operator    text NOT NULL CHECK (operator ~ '^[a-z0-9._-]{1,64}$'),
    reason      text NOT NULL CHECK (length(btrim(reason)) BETWEEN 10 AND 500),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (org_id, id),
    -- At most eight hours: break-glass is for an incident, not a standing door.
    CHECK (ends_at > starts_at AND ends_at <= starts_at + interval '8 hours')
);
CREATE INDEX operator_grants_by_operator ON app.operator_grants (org_id, operator, ends_at);
CALL app.declare_tenant_table('app.operator_grants');

-- The runtime role may only set revoked_at (its column grant); this makes that once, and
-- never back to NULL: a revoked grant stays revoked.
CREATE FUNCTION app.operator_grant_revoke_once() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL THEN
        RAISE EXCEPTION 'an operator grant is revoked once and never restored'
            USING ERRCODE = 'PH423';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER operator_grants_revoke_once BEFORE UPDATE ON app.operator_grants
    FOR EACH ROW EXECUTE FUNCTION app.operator_grant_revoke_once();
