-- SCIM 2.0 provisioning (RFC 7643/7644) as Microsoft Entra ID drives it: per-org bearer
-- tokens, SCIM attributes on users, groups and memberships, and the group -> role
-- mapping. See docs/scim.md.

-- Whether SSO sign-ins may create unknown users just in time (default off; read by the
-- SSO sign-in code). Changed by the org's admins (column-level UPDATE grant).
ALTER TABLE app.organisations
    ADD COLUMN sso_jit_provisioning boolean NOT NULL DEFAULT false;

-- SCIM attributes of a user. `email` (the sign-in address) stays the identity for
-- password and SSO sign-ins; `scim_user_name` is SCIM's userName when it was set by SCIM
-- (userName of a user SCIM never touched is their email). userName is case-insensitive
-- (RFC 7643 §4.1.1: caseExact false), externalId case-sensitive.
ALTER TABLE app.users
    ADD COLUMN scim_user_name    text CHECK (length(scim_user_name) BETWEEN 1 AND 512),
    ADD COLUMN scim_external_id  text CHECK (length(scim_external_id) BETWEEN 1 AND 512),
    ADD COLUMN scim_display_name text CHECK (length(scim_display_name) BETWEEN 1 AND 512),
    ADD COLUMN given_name        text CHECK (length(given_name) BETWEEN 1 AND 512),
    ADD COLUMN family_name       text CHECK (length(family_name) BETWEEN 1 AND 512),
    -- [{"value": ..., "type": ..., "primary": ...}], validated by the application.
    ADD COLUMN scim_emails       jsonb CHECK (scim_emails IS NULL OR jsonb_typeof(scim_emails) = 'array'),
    -- Created or adopted by SCIM: its role follows the group mapping.
    ADD COLUMN scim_managed      boolean NOT NULL DEFAULT false,
    -- Set with status 'disabled' when SCIM deprovisioned the user (active=false or
    -- DELETE). Only SCIM clears it: SSO sign-in and just-in-time provisioning must refuse
    -- such a user and must not create a new one for the same address.
    ADD COLUMN deprovisioned_by_scim boolean NOT NULL DEFAULT false,
    -- SCIM DELETE: the row stays (the audit trail refers to it) but SCIM no longer sees it.
    ADD COLUMN scim_deleted_at   timestamptz,
    ADD CONSTRAINT users_deprovisioned_is_disabled
        CHECK (NOT deprovisioned_by_scim OR status = 'disabled'),
    ADD CONSTRAINT users_scim_deleted_is_deprovisioned
        CHECK (scim_deleted_at IS NULL OR deprovisioned_by_scim);
CREATE UNIQUE INDEX users_scim_user_name ON app.users (org_id, lower(scim_user_name));
CREATE UNIQUE INDEX users_scim_external_id ON app.users (org_id, scim_external_id);

-- SCIM bearer tokens: issued by an org admin, shown once, stored as SHA-256, expiring,
-- revocable.
CREATE TABLE app.scim_tokens (
    org_id      uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    token_hash  bytea NOT NULL CHECK (length(token_hash) = 32),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_by  uuid,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, token_hash)
);
CALL app.declare_tenant_table('app.scim_tokens');

CREATE TABLE app.scim_groups (
    org_id       uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 512),
    external_id  text CHECK (length(external_id) BETWEEN 1 AND 512),
    created_at   timestamptz NOT NULL,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
-- Entra matches groups by displayName: one group per name (case-insensitive).
CREATE UNIQUE INDEX scim_groups_display_name ON app.scim_groups (org_id, lower(display_name));
CREATE UNIQUE INDEX scim_groups_external_id ON app.scim_groups (org_id, external_id);
CALL app.declare_tenant_table('app.scim_groups');

CREATE TABLE app.scim_group_members (
    org_id   uuid NOT NULL,
    group_id uuid NOT NULL,
    user_id  uuid NOT NULL,
    PRIMARY KEY (org_id, group_id, user_id),
    FOREIGN KEY (org_id, group_id) REFERENCES app.scim_groups (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES app.users (org_id, id) ON DELETE CASCADE
);
CREATE INDEX scim_group_members_by_user ON app.scim_group_members (org_id, user_id);
CALL app.declare_tenant_table('app.scim_group_members');

-- Group -> role mapping. `group_ref` names a group by its SCIM id or by its displayName
-- (case-insensitive). A SCIM-managed user's role is the most privileged role mapped to
-- any of their groups, otherwise the least privileged; with no mapping at all, SCIM does
-- not touch roles.
CREATE TABLE app.scim_role_mappings (
    org_id    uuid NOT NULL REFERENCES app.organisations (id) ON DELETE CASCADE,
    group_ref text NOT NULL CHECK (length(group_ref) BETWEEN 1 AND 512),
    role      text NOT NULL CHECK (role IN ('admin', 'approver', 'requester', 'read_only')),
    PRIMARY KEY (org_id, group_ref)
);
CALL app.declare_tenant_table('app.scim_role_mappings');
