-- Invitations (issue #14 point 4; the pages of #15 use them too): a user created without
-- a password sets one by presenting a single-use token, stored only as its SHA-256, that
-- expires. Admins no longer type other people's passwords.
CREATE TABLE app.invitations (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    user_id     uuid NOT NULL,
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    -- NULL: an operator's command (`procuhelp-server org create`).
    created_by  uuid,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, token_hash),
    FOREIGN KEY (org_id, user_id) REFERENCES app.users (org_id, id) ON DELETE CASCADE,
    CHECK (expires_at > created_at)
);
CREATE INDEX invitations_by_user ON app.invitations (org_id, user_id);
CREATE INDEX invitations_by_creator ON app.invitations (org_id, created_by);
CALL app.declare_tenant_table('app.invitations');
