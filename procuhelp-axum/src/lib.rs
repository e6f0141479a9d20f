//! ProcuHelp SDK for axum (being assembled: see issue #12).
#![forbid(unsafe_code)]
