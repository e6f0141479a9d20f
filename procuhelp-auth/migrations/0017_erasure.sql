-- GDPR erasure (issue #14): an erased user's row stays as "a former user", so approvals,
-- elevations and tokens that refer to the id stay whole, but it holds nothing about the
-- person: a placeholder address derived from the id, no name, no credentials, no SCIM
-- attributes, and it can never be enabled again.
ALTER TABLE app.users
    ADD COLUMN erased_at timestamptz,
    ADD CONSTRAINT users_erased_is_empty CHECK (
        erased_at IS NULL OR (
            status = 'disabled' AND disabled_by_admin AND NOT scim_managed
            AND NOT deprovisioned_by_scim
            AND password_hash IS NULL AND totp_sealed IS NULL AND totp_pending_sealed IS NULL
            AND scim_user_name IS NULL AND scim_external_id IS NULL
            AND scim_display_name IS NULL AND given_name IS NULL AND family_name IS NULL
            AND scim_emails IS NULL AND scim_handed_over_by IS NULL
        ));

-- Enabling an erased user would bring an account back that its person asked to end.
CREATE FUNCTION app.erased_users_stay_erased() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.erased_at IS NOT NULL AND NEW.erased_at IS DISTINCT FROM OLD.erased_at THEN
        RAISE EXCEPTION 'an erased user stays erased' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER erased_users_stay_erased BEFORE UPDATE ON app.users FOR EACH ROW
    WHEN (OLD.erased_at IS NOT NULL)
    EXECUTE FUNCTION app.erased_users_stay_erased();
