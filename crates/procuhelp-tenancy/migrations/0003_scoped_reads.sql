-- Single-round-trip tenant-scoped reads. Each function enters the organisation and runs
-- its query inside the caller's statement: called in autocommit, the transaction-local
-- tenant lives exactly as long as that one statement. SECURITY INVOKER (the default), so
-- row-level security applies to the query inside as to any other.

-- A transaction may enter one organisation only: switching tenant mid-transaction (a
-- scoped-read function called inside another org's TenantTx, say) is refused.
CREATE OR REPLACE FUNCTION app.enter_org(org uuid) RETURNS void
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
    IF NOT EXISTS (SELECT 1 FROM app.organisations WHERE id = org) THEN
        RAISE EXCEPTION 'unknown organisation' USING ERRCODE = 'PH404';
    END IF;
END $$;

CREATE FUNCTION app.supplier_get(org uuid, supplier uuid) RETURNS SETOF app.suppliers
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    PERFORM app.enter_org(org);
    RETURN QUERY SELECT * FROM app.suppliers s WHERE s.id = supplier;
END $$;

CREATE FUNCTION app.supplier_first_page(org uuid, page_size integer) RETURNS SETOF app.suppliers
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    PERFORM app.enter_org(org);
    RETURN QUERY SELECT * FROM app.suppliers s ORDER BY s.name, s.id LIMIT page_size;
END $$;
