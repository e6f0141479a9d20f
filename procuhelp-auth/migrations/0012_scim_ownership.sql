-- SCIM manages only the users it owns, and an admin's disable wins over SCIM (issue #11,
-- finding 7). See docs/scim.md "Ownership".
--
-- Before: SCIM listed and PATCHed every user and "adopted" whoever it wrote to
-- (scim_managed), and federated sign-in linked by the SCIM externalId/userName of a
-- SCIM-managed user, so the SCIM token holder could point a local admin's externalId at
-- their own identity and sign in as that admin. Now `scim_managed` means SCIM-owned:
-- created by SCIM, or handed over by an admin through an audited endpoint
-- (scim_handed_over_at/_by); SCIM never sees any other user.

ALTER TABLE app.users
    -- An admin disabled the user (POST /api/users/{id}/disable). Only an admin clears it;
    -- SCIM `active: true` is refused while it is set. Independent of
    -- deprovisioned_by_scim: both may hold, and each side lifts only its own.
    ADD COLUMN disabled_by_admin   boolean NOT NULL DEFAULT false,
    -- When and by whom a local user was handed over to SCIM (NULL: created by SCIM, or
    -- not SCIM's). A handed-over user may keep a password or TOTP: the admin chose to.
    ADD COLUMN scim_handed_over_at timestamptz,
    ADD COLUMN scim_handed_over_by uuid;

-- Data repair runs as the owner, who is bound by FORCE ROW LEVEL SECURITY like everyone
-- else: lift it for these statements only (the migration is one transaction).
ALTER TABLE app.users NO FORCE ROW LEVEL SECURITY;
ALTER TABLE app.scim_group_members NO FORCE ROW LEVEL SECURITY;

-- Who disabled whom was not recorded: a disabled user SCIM did not deprovision was
-- disabled by an admin (the only other way).
UPDATE app.users SET disabled_by_admin = true
 WHERE status = 'disabled' AND NOT deprovisioned_by_scim;

-- Undo adoptions of local accounts. A user SCIM created has no password and no TOTP (a
-- password change needs the current password), so a SCIM-managed user with either was
-- adopted: they become local again, with their SCIM identifiers cleared so that no
-- federated identity can be linked to them through SCIM data. If SCIM had deprovisioned
-- them, they stay disabled, now as an admin's disable (an admin decides; SCIM can no
-- longer see them). Their group memberships go: groups hold SCIM's users only. An admin
-- who wants SCIM to manage such a user hands them over explicitly.
-- (SSO-only users SCIM may have adopted cannot be told apart from users SCIM created;
-- they stay SCIM's, which keeps SCIM deprovisioning them.)
DELETE FROM app.scim_group_members m USING app.users u
 WHERE m.org_id = u.org_id AND m.user_id = u.id
   AND u.scim_managed AND (u.password_hash IS NOT NULL OR u.totp_sealed IS NOT NULL);
UPDATE app.users
   SET scim_managed = false,
       scim_user_name = NULL,
       scim_external_id = NULL,
       disabled_by_admin = disabled_by_admin OR deprovisioned_by_scim,
       deprovisioned_by_scim = false,
       scim_deleted_at = NULL
 WHERE scim_managed AND (password_hash IS NOT NULL OR totp_sealed IS NOT NULL);

ALTER TABLE app.users FORCE ROW LEVEL SECURITY;
ALTER TABLE app.scim_group_members FORCE ROW LEVEL SECURITY;

ALTER TABLE app.users
    ADD CONSTRAINT users_admin_disabled_is_disabled
        CHECK (NOT disabled_by_admin OR status = 'disabled'),
    ADD CONSTRAINT users_handed_over_is_scim_managed
        CHECK ((scim_handed_over_at IS NULL) = (scim_handed_over_by IS NULL)
               AND (scim_handed_over_at IS NULL OR scim_managed));
