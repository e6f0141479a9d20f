//! The real SSO peers (scripts/sso-peers.sh): started once per test binary, idempotently,
//! and described by the variables `sso-peers.sh env` prints. A peer that cannot be started
//! fails the test: these tests never skip.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The peers' settings (`PROCUHELP_OIDC_*`, `PROCUHELP_SAML_*`).
#[derive(Debug)]
pub struct SsoPeers {
    vars: HashMap<String, String>,
}

impl SsoPeers {
    /// A variable `sso-peers.sh env` printed.
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("sso-peers.sh env did not print {name}"))
    }

    /// The OIDC client secret (from the 0600 file the script wrote).
    pub fn oidc_client_secret(&self) -> String {
        std::fs::read_to_string(self.var("PROCUHELP_OIDC_CLIENT_SECRET_FILE"))
            .expect("reading the OIDC client secret file")
            .trim_end()
            .to_owned()
    }

    /// A token made by the forger (`forge.mjs`) from `claims` in `mode`.
    pub fn forge(&self, claims: &serde_json::Value, mode: &str) -> String {
        let out = Command::new("node")
            .arg(self.var("PROCUHELP_OIDC_FORGE"))
            .arg(claims.to_string())
            .arg(format!("--mode={mode}"))
            .output()
            .expect("running node forge.mjs");
        assert!(
            out.status.success(),
            "forge.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

fn repo_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("scripts/sso-peers.sh").exists() {
        assert!(dir.pop(), "scripts/sso-peers.sh not found above the crate");
    }
    dir
}

/// Starts the peers (once per process) and returns their settings.
pub fn sso_peers() -> &'static SsoPeers {
    static PEERS: OnceLock<SsoPeers> = OnceLock::new();
    PEERS.get_or_init(|| {
        let script = repo_root().join("scripts/sso-peers.sh");
        let start = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .expect("running scripts/sso-peers.sh start");
        assert!(
            start.status.success(),
            "scripts/sso-peers.sh start failed (the SSO tests need the real peers):\n{}{}",
            String::from_utf8_lossy(&start.stdout),
            String::from_utf8_lossy(&start.stderr)
        );
        let env = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .expect("running scripts/sso-peers.sh env");
        assert!(env.status.success(), "scripts/sso-peers.sh env failed");
        let mut vars = HashMap::new();
        for line in String::from_utf8(env.stdout).unwrap().lines() {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                vars.insert(k.to_owned(), v.to_owned());
            }
        }
        SsoPeers { vars }
    })
}
