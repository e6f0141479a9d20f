//! Vulnerability disclosure: the deployment's `/.well-known/security.txt`
//! ([`procuhelp_axum::security_txt`], RFC 9116) from `--security-txt FILE`, and the
//! checks `serve` and `posture` make of it. The policy itself is `SECURITY.md`.

use std::path::Path;

use anyhow::Context as _;
use procuhelp_axum::security_txt::SecurityTxt;
use time::OffsetDateTime;

/// How long before it expires `posture` and `serve` start warning.
pub const RENEW_WITHIN: time::Duration = time::Duration::days(30);

/// Reads and checks `path` (JSON, at most 16 KiB): refused when malformed, expired, or
/// expiring more than a year ahead.
pub fn load(path: &Path) -> anyhow::Result<SecurityTxt> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > 16 * 1024 {
        anyhow::bail!("{} is larger than 16 KiB", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let txt: SecurityTxt = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a security.txt configuration", path.display()))?;
    txt.check(OffsetDateTime::now_utc())
        .with_context(|| path.display().to_string())?;
    Ok(txt)
}

/// A warning when `txt` expires within [`RENEW_WITHIN`].
pub fn renewal_warning(txt: &SecurityTxt) -> Option<String> {
    txt.expires_within(OffsetDateTime::now_utc(), RENEW_WITHIN)
        .then(|| format!("security.txt expires at {}: renew it", txt.expires))
}
