-- Supplier bank details, encrypted by the field cipher (AAD: org, "suppliers", "iban",
-- row). Declared for key rotation in `procuhelp_server::suppliers::ENCRYPTED_COLUMNS`.
-- (Was part of the SDK's 0004 before each crate owned its migrations.)
ALTER TABLE app.suppliers ADD COLUMN iban_sealed bytea;
