-- Imports of event files (`PgAuditSink::import_file`) look up an organisation's earlier
-- imports (a file is imported once) and its erasures (erased persons' personal data is
-- not brought back). This partial index holds only those two actions, so the lookups do
-- not read the organisation's other events, and appends of every other action pay one
-- predicate check per row.
CREATE INDEX audit_events_imports_erasures ON app.audit_events (org_id, action, at)
    WHERE action IN ('audit.imported', 'audit.person_erased');
