-- Data residency (issue #14, point 6): every organisation has a data region, a deployment
-- serves exactly one, and the database refuses to enter an organisation of another
-- region — to this deployment it does not exist (the same PH404 as an unknown one, so
-- nothing tells a client it exists elsewhere).
ALTER TABLE app.organisations
    ADD COLUMN data_region text NOT NULL DEFAULT 'eu'
        CHECK (data_region IN ('eu', 'uk', 'ch', 'us'));

-- The region this deployment serves: one row, written only by the schema owner (from the
-- deployment's residency configuration), read by the runtime role. Not a setting the
-- runtime role could change for its session.
CREATE TABLE app.deployment (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    region    text NOT NULL CHECK (region IN ('eu', 'uk', 'ch', 'us'))
);
INSERT INTO app.deployment (region) VALUES ('eu');

CREATE OR REPLACE FUNCTION app.enter_org(org uuid) RETURNS uuid
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    current_org uuid := app.current_org();
BEGIN
    IF org IS NULL THEN
        RAISE EXCEPTION 'no organisation given' USING ERRCODE = 'PH400';
    END IF;
    IF current_org IS NOT NULL AND current_org <> org THEN
        RAISE EXCEPTION 'this transaction already belongs to another organisation' USING ERRCODE = 'PH409';
    END IF;
    PERFORM set_config('procuhelp.org_id', org::text, true);
    IF NOT EXISTS (SELECT 1 FROM app.organisations o JOIN app.deployment d ON d.region = o.data_region
                   WHERE o.id = org) THEN
        RAISE EXCEPTION 'unknown organisation, or one of another region' USING ERRCODE = 'PH404';
    END IF;
    RETURN org;
END $$;
