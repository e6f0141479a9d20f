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
