-- Issue #11 finding 5: nothing made under an elevation outlasts it, and one admin alone
-- cannot switch off the second-admin rule.

-- A token acts for the user who created it (segregation of duties, and never with more
-- than that user's base role now): the creator must be a user of the same organisation.
-- Users are disabled, never deleted, so the reference always resolves.
ALTER TABLE app.api_tokens
    ADD CONSTRAINT api_tokens_created_by_user
        FOREIGN KEY (org_id, created_by) REFERENCES app.users (org_id, id);

-- A token minted with a permission only an elevation gave lives no longer than that
-- elevation: it is authenticated only while the elevation is active and unexpired, so a
-- revocation ends it too.
ALTER TABLE app.api_tokens
    ADD COLUMN elevation_id uuid,
    ADD CONSTRAINT api_tokens_elevation
        FOREIGN KEY (org_id, elevation_id) REFERENCES app.elevations (org_id, id);

-- Changes that weaken the organisation's policy wait for a second admin. Only
-- `elevation_needs_second_admin` being switched off is such a change today; the setting
-- column names what changes so another can be added without a new table.
CREATE TABLE app.policy_changes (
    org_id        uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    setting       text NOT NULL CHECK (setting IN ('elevation_needs_second_admin')),
    value         boolean NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'applied', 'expired')),
    requested_by  uuid NOT NULL,
    approved_by   uuid,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    decided_at    timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, requested_by) REFERENCES app.users (org_id, id),
    FOREIGN KEY (org_id, approved_by) REFERENCES app.users (org_id, id),
    -- The second admin is another person, enforced by the database too.
    CHECK (approved_by IS NULL OR approved_by <> requested_by),
    CHECK ((state = 'applied') = (approved_by IS NOT NULL)),
    CHECK (expires_at > created_at)
);
CALL app.declare_tenant_table('app.policy_changes');
