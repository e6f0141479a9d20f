-- An elevation is granted over the role its person had then (issue #15 review): when that
-- role changes — by an admin, by SCIM's group mapping, by any statement — every elevation
-- of the person still pending or in force ends with it, in the same transaction (a
-- demoted approver does not keep an admin elevation; a new auditor is not held to the
-- role an old elevation replaced). Asking again, over the new role, is one request.
--
-- And a pending elevation can be declined (revoked before it started): it has no start.

DO $$
DECLARE
    name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = 'app.elevations'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%starts_at IS NULL%';
    EXECUTE format('ALTER TABLE app.elevations DROP CONSTRAINT %I', name);
END
$$;
ALTER TABLE app.elevations ADD CONSTRAINT elevations_started
    CHECK ((state <> 'pending' OR starts_at IS NULL)
           AND (state IN ('pending', 'revoked') OR starts_at IS NOT NULL));

CREATE FUNCTION app.end_elevations_on_role_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE app.elevations SET state = 'revoked', ended_at = now()
     WHERE org_id = NEW.org_id AND user_id = NEW.id AND state IN ('pending', 'active');
    RETURN NULL;
END
$$;
CREATE TRIGGER end_elevations_on_role_change AFTER UPDATE OF role ON app.users
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION app.end_elevations_on_role_change();
ALTER TABLE app.users ENABLE ALWAYS TRIGGER end_elevations_on_role_change;
