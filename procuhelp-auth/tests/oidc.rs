//! OpenID Connect against the real provider (npm `oidc-provider`, shaped like Entra ID,
//! started by scripts/sso-peers.sh): the full browserless code flow, and every rejection
//! the issue lists, each with its typed error and no identity.
#![cfg(feature = "oidc")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sso_peers.rs"]
mod sso_peers;

use procuhelp_auth::Role;
use procuhelp_auth::sso::GroupClaim;
use procuhelp_auth::sso::oidc::{OidcClient, OidcConnection, OidcError, PendingLogin};
use procuhelp_core::{OutboundError, OutboundPolicy};
use secrecy::SecretString;
use serde_json::json;
use sso_peers::{SsoPeers, sso_peers};
use time::OffsetDateTime;

const REDIRECT_URI: &str = "http://127.0.0.1:9/sso/oidc/callback";
const ADMINS: &str = "65df403a-b4b0-457b-a977-0841ac8f8e7c";
const ALICE_OID: &str = "15c3cd26-a73b-4031-9bb6-f765472dc802";
const OTHER_TENANT: &str = "9ea5142f-4003-4f72-bd41-7b39ccba08e3";

/// reqwest in the test's own browser needs a process-wide rustls provider.
fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn connection(peers: &SsoPeers) -> OidcConnection {
    install_crypto();
    serde_json::from_value(json!({
        "discovery_url": peers.var("PROCUHELP_OIDC_DISCOVERY_URL"),
        "issuer": peers.var("PROCUHELP_OIDC_ISSUER"),
        "client_id": peers.var("PROCUHELP_OIDC_CLIENT_ID"),
        "tenant_ids": [peers.var("PROCUHELP_OIDC_TENANT_ID")],
        "redirect_uri": REDIRECT_URI,
        "group_roles": { ADMINS: "admin" },
    }))
    .unwrap()
}

/// The provider runs on loopback: only the operator's test door lets us reach it.
const LOOPBACK: OutboundPolicy = OutboundPolicy::dangerous_allow_loopback_for_tests();

fn client(peers: &SsoPeers) -> OidcClient {
    OidcClient::new(
        connection(peers),
        SecretString::from(peers.oidc_client_secret()),
        LOOPBACK,
    )
    .unwrap()
}

/// The browser: follows the provider's redirects (keeping its cookies) until it is sent
/// back to our redirect URI, and returns that URL's query parameters.
async fn browser_login(authorize_url: &str) -> std::collections::HashMap<String, String> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let mut url = reqwest::Url::parse(authorize_url).unwrap();
    for _ in 0..10 {
        let response = browser.get(url.clone()).send().await.unwrap();
        assert!(
            response.status().is_redirection(),
            "the provider answered {} at {url}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        url = url.join(&location).unwrap();
        if url.as_str().starts_with(REDIRECT_URI) {
            return url.query_pairs().into_owned().collect();
        }
    }
    panic!("no redirect back to {REDIRECT_URI}");
}

async fn authorize(client: &OidcClient, login: &str) -> (PendingLogin, String, String) {
    let (url, pending) = client.begin(Some(login)).await.unwrap();
    let query = browser_login(&url).await;
    assert!(!query.contains_key("error"), "provider error: {query:?}");
    (pending, query["state"].clone(), query["code"].clone())
}

#[tokio::test]
async fn code_flow_with_pkce_ends_in_the_entra_identity() {
    let peers = sso_peers();
    let client = client(peers);
    let (url, pending) = client.begin(Some("alice")).await.unwrap();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("nonce="), "{url}");
    let query = browser_login(&url).await;
    let identity = client
        .complete(
            &pending,
            &query["state"],
            &query["code"],
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(identity.tenant_id, peers.var("PROCUHELP_OIDC_TENANT_ID"));
    assert_eq!(identity.object_id, ALICE_OID);
    assert!(identity.mfa, "alice signs in with MFA: {:?}", identity.amr);
    assert_eq!(client.roles().role_for(&identity.groups), Some(Role::Admin));
    assert_eq!(
        identity.subject_key(),
        format!("oidc:{}:{ALICE_OID}", identity.tenant_id)
    );

    // bob: no MFA, not an admin.
    let (pending, state, code) = authorize(&client, "bob").await;
    let bob = client
        .complete(&pending, &state, &code, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(!bob.mfa);
    assert_eq!(client.roles().role_for(&bob.groups), None);

    // carol: too many groups for the token.
    let (pending, state, code) = authorize(&client, "carol").await;
    let carol = client
        .complete(&pending, &state, &code, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(carol.groups, GroupClaim::Overage);
}

#[tokio::test]
async fn state_mismatch_replayed_code_and_wrong_verifier_are_refused() {
    let peers = sso_peers();
    let client = client(peers);
    let now = OffsetDateTime::now_utc();

    let (pending, _state, code) = authorize(&client, "bob").await;
    let err = client
        .complete(&pending, "another-browsers-state", &code, now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::StateMismatch);

    // The code is redeemed once; the second redemption is refused by the provider.
    let (pending, state, code) = authorize(&client, "bob").await;
    client.complete(&pending, &state, &code, now).await.unwrap();
    let err = client
        .complete(&pending, &state, &code, now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::Provider("invalid_grant".to_owned()));

    // A code redeemed without the verifier that matches its challenge (PKCE).
    let (pending, state, code) = authorize(&client, "bob").await;
    let wrong = PendingLogin {
        state: pending.state.clone(),
        nonce: pending.nonce.clone(),
        pkce_verifier: zeroize::Zeroizing::new("x".repeat(43)),
    };
    let err = client
        .complete(&wrong, &state, &code, now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::Provider("invalid_grant".to_owned()));

    // An authorization request without a PKCE challenge is refused by the provider.
    let (url, _pending) = client.begin(Some("bob")).await.unwrap();
    let mut stripped = reqwest::Url::parse(&url).unwrap();
    let kept: Vec<(String, String)> = stripped
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    stripped.query_pairs_mut().clear().extend_pairs(kept);
    let query = browser_login(stripped.as_str()).await;
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn forged_and_invalid_id_tokens_are_refused_with_their_reason() {
    let peers = sso_peers();
    let client = client(peers);
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp();
    let nonce = "n-0S6_WzA2Mj";
    let aud = peers.var("PROCUHELP_OIDC_CLIENT_ID");
    let iss = peers.var("PROCUHELP_OIDC_ISSUER");

    // The reference token verifies: the forger's defaults are a valid Entra token.
    let good = peers.forge(&json!({ "nonce": nonce, "aud": aud }), "real");
    let identity = client.verify_id_token(&good, nonce, now).await.unwrap();
    assert_eq!(identity.object_id, ALICE_OID);

    let cases: Vec<(&str, serde_json::Value, &str, OidcError)> = vec![
        (
            "wrong key, same kid",
            json!({}),
            "other-key",
            OidcError::Signature(String::new()),
        ),
        (
            "alg none",
            json!({}),
            "none",
            OidcError::Signature(String::new()),
        ),
        (
            "HS256 with the PEM public key",
            json!({}),
            "hs256-pem",
            OidcError::Signature(String::new()),
        ),
        (
            "HS256 with the JWK",
            json!({}),
            "hs256-jwk",
            OidcError::Signature(String::new()),
        ),
        (
            "HS256 with the modulus",
            json!({}),
            "hs256-n",
            OidcError::Signature(String::new()),
        ),
        (
            "wrong issuer",
            json!({ "iss": "https://login.microsoftonline.com/common/v2.0" }),
            "real",
            OidcError::WrongIssuer,
        ),
        (
            "issuer of another tenant",
            json!({ "iss": iss.replace(peers.var("PROCUHELP_OIDC_TENANT_ID"), OTHER_TENANT) }),
            "real",
            OidcError::WrongIssuer,
        ),
        (
            "wrong tid",
            json!({ "tid": OTHER_TENANT }),
            "real",
            OidcError::WrongTenant,
        ),
        (
            "no tid",
            json!({ "tid": null }),
            "real",
            OidcError::MissingClaim("tid"),
        ),
        (
            "wrong audience",
            json!({ "aud": "00000000-1111-2222-3333-444444444444" }),
            "real",
            OidcError::WrongAudience,
        ),
        (
            "extra untrusted audience",
            json!({ "aud": [aud, "00000000-1111-2222-3333-444444444444"] }),
            "real",
            OidcError::WrongAudience,
        ),
        (
            "expired beyond the skew",
            json!({ "exp": t - 300, "iat": t - 3900 }),
            "real",
            OidcError::Expired,
        ),
        (
            "issued in the future",
            json!({ "iat": t + 600, "exp": t + 4200 }),
            "real",
            OidcError::NotYetValid,
        ),
        (
            "not before in the future",
            json!({ "nbf": t + 600 }),
            "real",
            OidcError::NotYetValid,
        ),
        (
            "nonce mismatch",
            json!({ "nonce": "another-login" }),
            "real",
            OidcError::NonceMismatch,
        ),
        (
            "no nonce",
            json!({ "nonce": null }),
            "real",
            OidcError::NonceMismatch,
        ),
        (
            "no oid",
            json!({ "oid": null }),
            "real",
            OidcError::MissingClaim("oid"),
        ),
    ];
    for (name, mut claims, mode, expected) in cases {
        let obj = claims.as_object_mut().unwrap();
        obj.entry("nonce").or_insert(json!(nonce));
        obj.entry("aud").or_insert(json!(aud));
        let token = peers.forge(&claims, mode);
        let err = client
            .verify_id_token(&token, nonce, now)
            .await
            .expect_err(name);
        match (&expected, &err) {
            (OidcError::Signature(_), OidcError::Signature(_)) => {}
            _ => assert_eq!(err, expected, "{name}"),
        }
    }

    // Within the skew: expired 30 s ago still verifies (bounded tolerance, not none).
    let recent = peers.forge(
        &json!({ "nonce": nonce, "aud": aud, "exp": t - 30, "iat": t - 3630 }),
        "real",
    );
    client.verify_id_token(&recent, nonce, now).await.unwrap();

    // Garbage never panics.
    for junk in [
        "",
        "a.b",
        "a.b.c",
        "..",
        &"x".repeat(20_000),
        "eyJhbGciOiJub25lIn0.e30.",
    ] {
        assert!(client.verify_id_token(junk, nonce, now).await.is_err());
    }
}

#[tokio::test]
async fn nooauth_same_email_different_oid_is_a_different_identity() {
    let peers = sso_peers();
    let client = client(peers);
    let (pending, state, code) = authorize(&client, "alice").await;
    let alice = client
        .complete(&pending, &state, &code, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let (pending, state, code) = authorize(&client, "eve").await;
    let eve = client
        .complete(&pending, &state, &code, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(alice.email, eve.email, "the peer gives eve alice's e-mail");
    assert_ne!(alice.subject_key(), eve.subject_key());
}

#[tokio::test]
async fn a_connection_that_does_not_match_discovery_or_is_invalid_is_refused() {
    let peers = sso_peers();
    let mut conn = connection(peers);
    conn.issuer = "https://login.microsoftonline.com/common/v2.0".to_owned();
    conn.tenant_ids = vec![OTHER_TENANT.to_owned()];
    assert!(conn.validate().is_err(), "tenant not in a fixed issuer");
    conn.issuer = "https://login.microsoftonline.com/{tenantid}/v2.0".to_owned();
    let client = OidcClient::new(
        conn,
        SecretString::from(peers.oidc_client_secret()),
        LOOPBACK,
    )
    .unwrap();
    assert!(matches!(
        client.begin(None).await,
        Err(OidcError::Discovery(_))
    ));

    let mut conn = connection(peers);
    conn.discovery_url = "http://example.com/.well-known/openid-configuration".to_owned();
    assert!(matches!(conn.validate(), Err(OidcError::Config(_))));
    let mut conn = connection(peers);
    conn.group_roles
        .insert("g".to_owned(), "superuser".to_owned());
    assert!(matches!(conn.validate(), Err(OidcError::Config(_))));
    let conn = connection(peers);
    assert!(OidcClient::new(conn.clone(), SecretString::from(String::new()), LOOPBACK).is_err());
    // The production policy refuses the loopback provider before any request.
    assert_eq!(
        OidcClient::new(
            conn,
            SecretString::from(peers.oidc_client_secret()),
            OutboundPolicy::public_only()
        )
        .unwrap_err(),
        OidcError::Fetch(OutboundError::NotAllowed)
    );
}

#[tokio::test]
async fn an_unknown_key_id_refreshes_the_keys_once() {
    install_crypto();
    let peers = sso_peers();
    let addr = peers.var("PROCUHELP_OIDC_ADDR");
    let http = reqwest::Client::new();
    let publish = |keys: &'static str| {
        let request = http.put(format!("{addr}/_test/jwks?keys={keys}"));
        async move { request.send().await.unwrap().error_for_status().unwrap() }
    };
    let now = OffsetDateTime::now_utc();
    let nonce = "rollover";
    let aud = peers.var("PROCUHELP_OIDC_CLIENT_ID");
    let good = peers.forge(&json!({ "nonce": nonce, "aud": aud }), "real");
    let rolled = peers.forge(&json!({ "nonce": nonce, "aud": aud }), "rollover");

    // Keys cached while the provider publishes only its current key.
    publish("main").await;
    let client = client(peers);
    client.verify_id_token(&good, nonce, now).await.unwrap();
    // The provider rolls over: a token under the new key id makes the client refresh.
    publish("main,rollover").await;
    let identity = client.verify_id_token(&rolled, nonce, now).await;
    publish("main").await;
    assert_eq!(identity.unwrap().object_id, ALICE_OID);

    // A key that is not published, even after the refresh, stays unknown.
    let client = self::client(peers);
    client.verify_id_token(&good, nonce, now).await.unwrap();
    assert_eq!(
        client
            .verify_id_token(&rolled, nonce, now)
            .await
            .unwrap_err(),
        OidcError::UnknownKey
    );
}

/// A tiny provider on loopback: serves `discovery` at `/.well-known/openid-configuration`
/// and an empty JWKS at `/keys`, answers anything else 404, and records every request
/// line it receives (to prove what was never asked).
async fn tiny_provider(
    discovery: impl Fn(std::net::SocketAddr) -> serde_json::Value + Send + 'static,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let document = discovery(addr).to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = vec![0u8; 16 * 1024];
            let n = stream.read(&mut head).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&head[..n]).into_owned();
            let line = head.lines().next().unwrap_or_default().to_owned();
            log.lock().unwrap().push(line.clone());
            let (status, body) = if line.starts_with("GET /.well-known/openid-configuration ") {
                ("200 OK", document.clone())
            } else if line.starts_with("GET /keys ") {
                ("200 OK", r#"{"keys":[]}"#.to_owned())
            } else {
                ("404 Not Found", "{}".to_owned())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (addr, seen)
}

/// Issue #11: a discovery document naming `http://[::ffff:127.0.0.1]:…/token` made the
/// server POST the code, the PKCE verifier and the client secret there in clear text.
/// The token endpoint is held to the outbound policy before anything is sent, even when
/// the (test) policy lets the discovery document itself come from loopback.
#[tokio::test]
async fn a_token_endpoint_on_an_ipv4_mapped_loopback_address_gets_no_request() {
    install_crypto();
    const TID: &str = "f7393f3e-c33d-4dfe-b4a8-f473310e7bf5";
    let issuer = format!("https://login.microsoftonline.com/{TID}/v2.0");
    let doc_issuer = issuer.clone();
    let (addr, seen) = tiny_provider(move |addr| {
        json!({
            "issuer": doc_issuer,
            "authorization_endpoint": format!("http://{addr}/authorize"),
            "token_endpoint": format!("http://[::ffff:127.0.0.1]:{}/token", addr.port()),
            "jwks_uri": format!("http://{addr}/keys"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    })
    .await;
    let conn: OidcConnection = serde_json::from_value(json!({
        "discovery_url": format!("http://{addr}/.well-known/openid-configuration"),
        "issuer": issuer,
        "client_id": "13f0eaea-7284-4cae-8822-bcd14389d2fc",
        "tenant_ids": [TID],
        "redirect_uri": REDIRECT_URI,
    }))
    .unwrap();
    let client = OidcClient::new(
        conn,
        SecretString::from("the-client-secret".to_owned()),
        LOOPBACK,
    )
    .unwrap();
    let pending = PendingLogin {
        state: "state-1".to_owned().into(),
        nonce: "nonce-1".to_owned().into(),
        pkce_verifier: "verifier-0123456789012345678901234567890123456789"
            .to_owned()
            .into(),
    };
    let refused = client
        .complete(&pending, "state-1", "the-code", OffsetDateTime::now_utc())
        .await
        .unwrap_err();
    let requests = seen.lock().unwrap().clone();
    assert!(
        !requests.iter().any(|r| r.contains("/token")),
        "the token endpoint was called: {requests:?}"
    );
    assert_eq!(
        refused,
        OidcError::Fetch(OutboundError::NotAllowed),
        "{refused}"
    );
}

/// The key set URL a discovery document names is held to the policy too: the metadata
/// service is never asked, and the tenant learns only the fixed reason.
#[tokio::test]
async fn a_jwks_uri_at_the_metadata_service_is_refused_before_any_request() {
    install_crypto();
    const TID: &str = "f7393f3e-c33d-4dfe-b4a8-f473310e7bf5";
    let issuer = format!("https://login.microsoftonline.com/{TID}/v2.0");
    let doc_issuer = issuer.clone();
    let (addr, seen) = tiny_provider(move |addr| {
        json!({
            "issuer": doc_issuer,
            "authorization_endpoint": format!("http://{addr}/authorize"),
            "token_endpoint": format!("http://{addr}/token"),
            "jwks_uri": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    })
    .await;
    let conn: OidcConnection = serde_json::from_value(json!({
        "discovery_url": format!("http://{addr}/.well-known/openid-configuration"),
        "issuer": issuer,
        "client_id": "13f0eaea-7284-4cae-8822-bcd14389d2fc",
        "tenant_ids": [TID],
        "redirect_uri": REDIRECT_URI,
    }))
    .unwrap();
    let client = OidcClient::new(conn, SecretString::from("s".to_owned()), LOOPBACK).unwrap();
    let refused = client.begin(None).await.unwrap_err();
    assert_eq!(refused, OidcError::Fetch(OutboundError::NotAllowed));
    assert_eq!(
        refused.to_string(),
        "OIDC provider: destination not allowed"
    );
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["GET /.well-known/openid-configuration HTTP/1.1"]
    );
}
