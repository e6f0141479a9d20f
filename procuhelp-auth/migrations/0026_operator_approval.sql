-- An organisation may require its admin's approval before an operator's grant is in
-- force (issue #16 point 7). The grant records whether it needed one (decided from the
-- policy when it was asked for, in the same transaction), and who approved it when. An
-- approved grant runs for the duration asked, from its approval.
ALTER TABLE app.organisations
    ADD COLUMN operator_access_needs_approval boolean NOT NULL DEFAULT false;

ALTER TABLE app.operator_grants
    ADD COLUMN approval_needed boolean NOT NULL DEFAULT false,
    ADD COLUMN approved_by     uuid,
    ADD COLUMN approved_at     timestamptz,
    ADD FOREIGN KEY (org_id, approved_by) REFERENCES app.users (org_id, id),
    ADD CHECK ((approved_by IS NULL) = (approved_at IS NULL)),
    ADD CHECK (approval_needed OR approved_at IS NULL),
    ADD CHECK (approved_at IS NULL OR starts_at = approved_at);
CREATE INDEX operator_grants_by_approver ON app.operator_grants (org_id, approved_by);

-- The runtime role may set revoked_at, and the approval columns (its column grants);
-- this allows exactly two changes, each once: a revocation (nothing else moves), and the
-- approval of a grant that waits for one (its window moves to start at the approval and
-- keeps its length). A revoked grant stays revoked; an approval is never undone.
CREATE OR REPLACE FUNCTION app.operator_grant_revoke_once() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.org_id <> OLD.org_id OR NEW.id <> OLD.id OR NEW.operator <> OLD.operator
       OR NEW.reason <> OLD.reason OR NEW.approval_needed <> OLD.approval_needed THEN
        RAISE EXCEPTION 'an operator grant is never rewritten' USING ERRCODE = 'PH423';
    END IF;
    IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
       AND NEW.approved_at IS NOT DISTINCT FROM OLD.approved_at
       AND NEW.approved_by IS NOT DISTINCT FROM OLD.approved_by
       AND NEW.starts_at = OLD.starts_at AND NEW.ends_at = OLD.ends_at THEN
        RETURN NEW;
    END IF;
    IF OLD.approval_needed AND OLD.approved_at IS NULL AND OLD.revoked_at IS NULL
       AND NEW.revoked_at IS NULL AND NEW.approved_at IS NOT NULL
       AND NEW.starts_at = NEW.approved_at
       AND NEW.ends_at - NEW.starts_at = OLD.ends_at - OLD.starts_at THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'an operator grant is approved once and revoked once, nothing else'
        USING ERRCODE = 'PH423';
END $$;
