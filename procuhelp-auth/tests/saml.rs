//! SAML service provider against a real IdP: responses made by pysaml2 and signed by
//! xmlsec1 (`scripts/saml-idp/idp.py`), accepted and attacked.
//!
//! Run: `cargo test -p procuhelp-auth --features saml --test saml`. Needs python3 with
//! pysaml2 and xmlsec1 (`scripts/setup.sh`); without them the tests fail (never skip).
#![cfg(feature = "saml")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use procuhelp_auth::sso::saml::{
    ConnectionError, Expected, ReplayCache, SamlConnection, SamlError, ServiceProvider,
    VerifiedAssertion,
};
use samael::crypto::{CertificateDer, Crypto, CryptoProvider as _, ReduceMode};
use time::OffsetDateTime;

const IDP_ENTITY_ID: &str = "https://sts.windows.net/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/";
const SP_ENTITY_ID: &str = "https://sp.procuhelp.test/saml";
const ACS_URL: &str = "https://sp.procuhelp.test/sso/saml/acs";
const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";
const ALICE: &str = "alice@contoso.example";
const MFA: &str = "http://schemas.microsoft.com/claims/multipleauthn";
const EMAIL_ATTR: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
const NAME_ATTR: &str = "http://schemas.microsoft.com/identity/claims/displayname";
const GROUPS_ATTR: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";

// ---- the IdP ---------------------------------------------------------------------------

struct Idp {
    script: PathBuf,
    dir: PathBuf,
}

/// The IdP CLI; a missing tool fails the test.
fn idp() -> Option<&'static Idp> {
    static IDP: OnceLock<Option<Idp>> = OnceLock::new();
    IDP.get_or_init(|| {
        let script = std::env::var_os("PROCUHELP_SAML_IDP")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/saml-idp/idp.py")
            });
        let missing = if !script.is_file() {
            Some(format!("{} (not found)", script.display()))
        } else if !run_ok("python3", &["-W", "ignore", "-c", "import saml2"]) {
            Some("python3 with pysaml2 (scripts/setup.sh)".to_owned())
        } else if !run_ok("xmlsec1", &["--version"]) {
            Some("xmlsec1 (apt-get install xmlsec1)".to_owned())
        } else {
            None
        };
        if let Some(what) = missing {
            // A real part missing is a failure, never a skip (scripts/setup.sh installs it).
            panic!("the SAML IdP is not usable: {what}");
        }
        let dir = std::env::var_os("PROCUHELP_SAML_IDP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("procuhelp-saml-test-keys"));
        let out = Command::new("python3")
            .arg(&script)
            .args(["keys", "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "idp.py keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Idp { script, dir })
    })
    .as_ref()
}

fn run_ok(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Idp {
    /// The response XML for alice, with `extra` idp.py options (later ones win).
    fn xml(&self, extra: &[&str]) -> String {
        let mut cmd = Command::new("python3");
        cmd.arg(&self.script)
            .arg("response")
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--acs",
                ACS_URL,
                "--audience",
                SP_ENTITY_ID,
                "--issuer",
                IDP_ENTITY_ID,
            ])
            .args(["--name-id", ALICE, "--xml"])
            .arg(format!("--attr={EMAIL_ATTR}={ALICE}"))
            .arg(format!("--attr={NAME_ATTR}=Alice Example"))
            .arg(format!("--attr={GROUPS_ATTR}=65df403a-admins"))
            .arg(format!("--attr={GROUPS_ATTR}=9b4b6468-approvers"))
            .args(extra);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "idp.py response {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn cert(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.crt"))).unwrap()
    }

    fn connection(&self) -> SamlConnection {
        let mut c = SamlConnection::new(
            IDP_ENTITY_ID,
            "https://login.microsoftonline.com/f7393f3e-c33d-4dfe-b4a8-f473310e7bf5/saml2",
            vec![self.cert("idp")],
            SP_ENTITY_ID,
            ACS_URL,
        );
        c.mfa_authn_contexts = vec![MFA.into()];
        c
    }

    fn der(&self, name: &str) -> CertificateDer {
        CertificateDer::from(
            openssl::x509::X509::from_pem(self.cert(name).as_bytes())
                .unwrap()
                .to_der()
                .unwrap(),
        )
    }
}

fn check_with(
    conn: SamlConnection,
    xml: &str,
    expected: Expected<'_>,
) -> Result<VerifiedAssertion, SamlError> {
    ServiceProvider::new(conn).unwrap().validate_response(
        &STANDARD.encode(xml),
        expected,
        OffsetDateTime::now_utc(),
    )
}

fn check(idp: &Idp, xml: &str) -> Result<VerifiedAssertion, SamlError> {
    check_with(idp.connection(), xml, Expected::InResponseTo(REQUEST_ID))
}

macro_rules! idp_or_skip {
    () => {
        match idp() {
            Some(idp) => idp,
            None => return,
        }
    };
}

// ---- XML surgery for the attacks ---------------------------------------------------------

/// Byte range of the (first) `<ns1:Assertion ...>...</ns1:Assertion>`.
fn assertion_span(xml: &str) -> std::ops::Range<usize> {
    let start = xml
        .find("<ns1:Assertion ")
        .expect("pysaml2 prefixes changed: no <ns1:Assertion");
    let end = xml.find("</ns1:Assertion>").unwrap() + "</ns1:Assertion>".len();
    start..end
}

/// A copy of the response's assertion without signature, with another ID and mallory's
/// identity instead of alice's.
fn evil_assertion(xml: &str) -> String {
    let mut a = xml[assertion_span(xml)].to_owned();
    if let (Some(s), Some(e)) = (a.find("<ns2:Signature"), a.find("</ns2:Signature>")) {
        a.replace_range(s..e + "</ns2:Signature>".len(), "");
    }
    let id_start = a.find(" ID=\"").unwrap() + 5;
    let id_end = id_start + a[id_start..].find('"').unwrap();
    a.replace_range(id_start..id_end, "evil-assertion");
    a.replace(ALICE, "mallory@contoso.example")
}

fn without_decl(xml: &str) -> &str {
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").unwrap() + 2..].trim_start(),
        None => xml,
    }
}

fn with_doctype(xml: &str, doctype: &str) -> String {
    format!("<?xml version=\"1.0\"?>\n{doctype}\n{}", without_decl(xml))
}

/// What samael's reduce-to-signed alone makes of a document: `Err` or the reduced XML.
fn samael_reduce(idp: &Idp, xml: &str) -> Result<String, String> {
    Crypto::reduce_xml_to_signed(
        xml,
        &[idp.der("idp")],
        ReduceMode::ValidateAndMarkNoAncestors,
    )
    .map_err(|e| e.to_string())
}

// ---- accepted ------------------------------------------------------------------------------

fn assert_alice(a: &VerifiedAssertion) {
    assert_eq!(a.name_id, ALICE);
    assert_eq!(
        a.name_id_format.as_deref(),
        Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
    );
    assert_eq!(a.email.as_deref(), Some(ALICE));
    assert_eq!(a.display_name.as_deref(), Some("Alice Example"));
    assert_eq!(a.groups, ["65df403a-admins", "9b4b6468-approvers"]);
    assert_eq!(a.issuer, IDP_ENTITY_ID);
    assert!(a.session_index.is_some());
    assert!(!a.assertion_id.is_empty());
    let now = OffsetDateTime::now_utc();
    // Solicited: the IdP's 5-minute NotOnOrAfter plus the 2-minute skew; unsolicited:
    // IssueInstant + 5 minutes exactly (made a few seconds ago).
    assert!(a.not_on_or_after > now + time::Duration::minutes(4));
    assert!(a.not_on_or_after < now + time::Duration::minutes(8));
}

#[test]
fn accepts_assertion_signed_response_signed_and_both() {
    let idp = idp_or_skip!();
    for flags in [
        &["--sign-assertion"][..],
        &["--sign-response"],
        &["--sign-assertion", "--sign-response"],
    ] {
        let mut args = vec!["--in-response-to", REQUEST_ID];
        args.extend_from_slice(flags);
        let a = check(idp, &idp.xml(&args)).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        assert_alice(&a);
        assert!(!a.mfa);
        assert_eq!(
            a.authn_context_class_refs,
            ["urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"]
        );
    }
}

#[test]
fn groups_map_to_roles_and_overage_is_not_no_groups() {
    use procuhelp_auth::Role;
    use procuhelp_auth::sso::{GroupClaim, RoleMapping};
    let idp = idp_or_skip!();
    let mapping = RoleMapping::new([("65df403a-admins", Role::Admin)]);
    let a = check(
        idp,
        &idp.xml(&["--in-response-to", REQUEST_ID, "--sign-assertion"]),
    )
    .unwrap();
    assert_eq!(mapping.role_for(&a.group_claim()), Some(Role::Admin));
    let overage = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--attr=http://schemas.microsoft.com/claims/groups.link=https://graph.windows.net/tenant/users/alice/getMemberObjects",
    ]);
    let a = check(idp, &overage).unwrap();
    assert_eq!(a.group_claim(), GroupClaim::Overage);
    assert_eq!(mapping.role_for(&a.group_claim()), None);
}

#[test]
fn mfa_context_is_reported() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--authn-context",
        MFA,
    ]);
    let a = check(idp, &xml).unwrap();
    assert!(a.mfa);
    assert_eq!(a.authn_context_class_refs, [MFA]);
}

#[test]
fn rollover_certificate_is_accepted_when_configured() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-response",
        "--key",
        "idp2",
    ]);
    assert_eq!(check(idp, &xml).unwrap_err(), SamlError::InvalidSignature);
    let mut conn = idp.connection();
    conn.idp_certificates.push(idp.cert("idp2"));
    assert_alice(&check_with(conn, &xml, Expected::InResponseTo(REQUEST_ID)).unwrap());
}

#[test]
fn unsolicited_only_when_allowed_and_without_in_response_to() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&["--sign-assertion"]);
    assert_eq!(
        check_with(idp.connection(), &xml, Expected::Unsolicited).unwrap_err(),
        SamlError::UnsolicitedNotAllowed
    );
    let mut conn = idp.connection();
    conn.dangerous().set_allow_idp_initiated(true);
    assert_alice(&check_with(conn.clone(), &xml, Expected::Unsolicited).unwrap());
    // A solicited response offered as unsolicited (its request was never ours here).
    let solicited = idp.xml(&["--sign-assertion", "--in-response-to", REQUEST_ID]);
    assert_eq!(
        check_with(conn, &solicited, Expected::Unsolicited).unwrap_err(),
        SamlError::InResponseToMismatch
    );
    // An unsolicited response where we expect an answer to our request.
    assert_eq!(
        check(idp, &xml).unwrap_err(),
        SamlError::InResponseToMismatch
    );
}

/// The Assertion's IssueInstant, read from the XML the IdP made.
fn assertion_issue_instant(xml: &str) -> OffsetDateTime {
    let assertion = &xml[assertion_span(xml)];
    let start = assertion.find("IssueInstant=\"").unwrap() + "IssueInstant=\"".len();
    let end = start + assertion[start..].find('"').unwrap();
    OffsetDateTime::parse(
        &assertion[start..end],
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// Five minutes means five minutes: the clock skew is not added on top of the
/// unsolicited lifetime (docs/saml.md). At IssueInstant + 5 min + 1 s (by our clock) the
/// assertion is refused, at IssueInstant + 4 min 59 s still accepted.
#[test]
fn unsolicited_assertion_at_five_minutes_and_a_second_is_refused() {
    let idp = idp_or_skip!();
    let mut conn = idp.connection();
    conn.dangerous().set_allow_idp_initiated(true);
    // The largest skew a connection may have: it must still not extend the lifetime.
    conn.max_clock_skew_secs = 300;
    let sp = ServiceProvider::new(conn).unwrap();
    let raw = idp.xml(&["--sign-assertion", "--not-on-or-after", "+3600"]);
    let issued = assertion_issue_instant(&raw);
    let xml = STANDARD.encode(&raw);
    let almost = issued + time::Duration::minutes(5) - time::Duration::seconds(1);
    let a = sp
        .validate_response(&xml, Expected::Unsolicited, almost)
        .unwrap();
    assert_eq!(a.not_on_or_after, issued + time::Duration::minutes(5));
    let late = issued + time::Duration::minutes(5) + time::Duration::seconds(1);
    assert_eq!(
        sp.validate_response(&xml, Expected::Unsolicited, late)
            .unwrap_err(),
        SamlError::StaleAssertion
    );
}

#[test]
fn unsolicited_assertions_live_five_minutes() {
    let idp = idp_or_skip!();
    let mut conn = idp.connection();
    conn.dangerous().set_allow_idp_initiated(true);
    let sp = ServiceProvider::new(conn).unwrap();
    // Conditions would allow an hour; the unsolicited lifetime does not.
    let xml = STANDARD.encode(idp.xml(&["--sign-assertion", "--not-on-or-after", "+3600"]));
    let now = OffsetDateTime::now_utc();
    let a = sp
        .validate_response(&xml, Expected::Unsolicited, now)
        .unwrap();
    assert!(a.not_on_or_after < now + time::Duration::minutes(8));
    let later = now + time::Duration::minutes(8);
    assert_eq!(
        sp.validate_response(&xml, Expected::Unsolicited, later)
            .unwrap_err(),
        SamlError::StaleAssertion
    );
    // The same response stays valid for the hour when it answers a request of ours.
    let solicited = STANDARD.encode(idp.xml(&[
        "--sign-assertion",
        "--not-on-or-after",
        "+3600",
        "--in-response-to",
        REQUEST_ID,
    ]));
    sp.validate_response(&solicited, Expected::InResponseTo(REQUEST_ID), later)
        .unwrap();
    assert_eq!(
        sp.validate_response(&solicited, Expected::InResponseTo(""), now)
            .unwrap_err(),
        SamlError::InResponseToMismatch
    );
}

#[test]
fn sha1_only_when_allowed() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--digest",
        "sha1",
        "--sig-alg",
        "rsa-sha1",
    ]);
    assert_eq!(check(idp, &xml).unwrap_err(), SamlError::Sha1NotAllowed);
    let digest_only = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--digest",
        "sha1",
    ]);
    assert_eq!(
        check(idp, &digest_only).unwrap_err(),
        SamlError::Sha1NotAllowed
    );
    let mut conn = idp.connection();
    conn.dangerous().set_allow_sha1(true);
    assert_alice(&check_with(conn, &xml, Expected::InResponseTo(REQUEST_ID)).unwrap());
}

#[test]
fn replayed_assertion_is_refused_by_the_cache() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&["--in-response-to", REQUEST_ID, "--sign-assertion"]);
    let cache = ReplayCache::new();
    let now = OffsetDateTime::now_utc();
    let first = check(idp, &xml).unwrap();
    cache.check_and_insert(&first, now).unwrap();
    let second = check(idp, &xml).unwrap();
    assert_eq!(second.assertion_id, first.assertion_id);
    assert_eq!(
        cache.check_and_insert(&second, now).unwrap_err(),
        SamlError::Replayed
    );
    // Once expired it is dropped (and the assertion itself would no longer validate).
    cache
        .check_and_insert(&second, first.not_on_or_after)
        .unwrap();
}

// ---- refused: signatures ---------------------------------------------------------------------

#[test]
fn unsigned_is_refused() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&["--in-response-to", REQUEST_ID]);
    assert_eq!(check(idp, &xml).unwrap_err(), SamlError::Unsigned);
}

#[test]
fn attacker_key_is_refused() {
    let idp = idp_or_skip!();
    for flag in ["--sign-assertion", "--sign-response"] {
        let xml = idp.xml(&["--in-response-to", REQUEST_ID, flag, "--key", "attacker"]);
        assert_eq!(
            check(idp, &xml).unwrap_err(),
            SamlError::InvalidSignature,
            "{flag}"
        );
    }
}

#[test]
fn name_id_tampered_after_signing_is_refused() {
    let idp = idp_or_skip!();
    for flag in ["--sign-assertion", "--sign-response"] {
        let xml = idp.xml(&["--in-response-to", REQUEST_ID, flag]);
        let tampered = xml.replacen(
            &format!(">{ALICE}</ns1:NameID>"),
            ">mallory@contoso.example</ns1:NameID>",
            1,
        );
        assert_ne!(tampered, xml);
        assert_eq!(
            check(idp, &tampered).unwrap_err(),
            SamlError::InvalidSignature,
            "{flag}"
        );
    }
}

/// Signature wrapping: every variant is refused by the structure check (one assertion,
/// a direct child), and, independently, samael's reduce-to-signed alone never lets the
/// evil identity through.
#[test]
fn signature_wrapping_variants_are_refused() {
    let idp = idp_or_skip!();
    let signed_assertion = idp.xml(&["--in-response-to", REQUEST_ID, "--sign-assertion"]);
    let signed_response = idp.xml(&["--in-response-to", REQUEST_ID, "--sign-response"]);
    let evil = evil_assertion(&signed_assertion);
    let span = assertion_span(&signed_assertion);
    let signed = &signed_assertion[span.clone()];
    let status = signed_assertion.find("<ns0:Status>").unwrap();

    let mut variants: Vec<(&str, String, SamlError)> = Vec::new();
    // 1. An unsigned assertion hidden in <samlp:Extensions>.
    let mut v = signed_assertion.clone();
    v.insert_str(status, &format!("<ns0:Extensions>{evil}</ns0:Extensions>"));
    variants.push((
        "unsigned assertion in Extensions",
        v,
        SamlError::MultipleAssertions,
    ));
    // 2. A second, evil assertion before the signed one.
    let mut v = signed_assertion.clone();
    v.insert_str(span.start, &evil);
    variants.push((
        "evil assertion before the signed one",
        v,
        SamlError::MultipleAssertions,
    ));
    // 3. An evil assertion after the signed one.
    let mut v = signed_assertion.clone();
    v.insert_str(span.end, &evil);
    variants.push((
        "evil assertion after the signed one",
        v,
        SamlError::MultipleAssertions,
    ));
    // 4. The signed assertion moved into Extensions of a response whose own assertion is evil.
    let mut v = signed_assertion.clone();
    v.replace_range(span.clone(), &evil);
    v.insert_str(
        status,
        &format!("<ns0:Extensions>{signed}</ns0:Extensions>"),
    );
    variants.push((
        "signed assertion moved into Extensions",
        v,
        SamlError::MultipleAssertions,
    ));
    // 5. The signed assertion alone, moved into Extensions (no assertion in place).
    let mut v = signed_assertion.clone();
    v.replace_range(span.clone(), "");
    v.insert_str(
        status,
        &format!("<ns0:Extensions>{signed}</ns0:Extensions>"),
    );
    variants.push(("only assertion misplaced", v, SamlError::MisplacedAssertion));
    // 6. A signed response wrapped inside an evil response with its own assertion.
    let body = without_decl(&signed_response);
    let root_tag = &body[..body.find('>').unwrap() + 1];
    let id_start = root_tag.find(" ID=\"").unwrap() + 5;
    let id_end = id_start + root_tag[id_start..].find('"').unwrap();
    let evil_root = format!(
        "{}evil-response{}",
        &root_tag[..id_start],
        &root_tag[id_end..]
    );
    let issuer = &body[body.find("<ns1:Issuer").unwrap()
        ..body.find("</ns1:Issuer>").unwrap() + "</ns1:Issuer>".len()];
    let v = format!(
        "{evil_root}{issuer}<ns0:Extensions>{body}</ns0:Extensions>\
         <ns0:Status><ns0:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></ns0:Status>\
         {}</ns0:Response>",
        evil_assertion(&signed_response)
    );
    variants.push((
        "signed response wrapped in an evil one",
        v,
        SamlError::MultipleAssertions,
    ));

    for (name, xml, want) in &variants {
        assert!(
            roxmltree::Document::parse(xml).is_ok(),
            "{name}: test built bad XML"
        );
        assert_eq!(check(idp, xml).unwrap_err(), *want, "{name}");
        // Second line of defence: the signed content alone never names mallory.
        let reduced = samael_reduce(idp, xml);
        eprintln!(
            "{name}: samael alone: {}",
            if reduced.is_ok() {
                "reduced"
            } else {
                "refused"
            }
        );
        if let Ok(reduced) = reduced {
            assert!(
                !reduced.contains("mallory"),
                "{name}: samael kept unsigned content:\n{reduced}"
            );
        }
    }
}

#[test]
fn signature_not_enveloped_over_its_parent_is_refused() {
    let idp = idp_or_skip!();
    // The assertion's signature moved up to the response: it still verifies (it
    // references the assertion by ID) but is not enveloped in what it signs.
    let xml = idp.xml(&["--in-response-to", REQUEST_ID, "--sign-assertion"]);
    let s = xml.find("<ns2:Signature").unwrap();
    let e = xml.find("</ns2:Signature>").unwrap() + "</ns2:Signature>".len();
    let signature = xml[s..e].to_owned();
    let mut v = xml.clone();
    v.replace_range(s..e, "");
    v.insert_str(v.find("<ns0:Status>").unwrap(), &signature);
    assert_eq!(check(idp, &v).unwrap_err(), SamlError::SignatureLocation);
}

/// `alice@contoso.example<!---->.evil.com`: the IdP signed the whole value (comments
/// are not part of the canonical form), a naive reader takes the first text node. We
/// refuse any comment; samael alone never yields the truncated value either.
#[test]
fn comment_inside_name_id_is_refused() {
    let idp = idp_or_skip!();
    let signed_name = format!("{ALICE}.evil.com");
    let xml = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--name-id",
        &signed_name,
    ]);
    // Untouched, the full value is what we read.
    assert_eq!(check(idp, &xml).unwrap().name_id, signed_name);
    let injected = xml.replacen(
        &format!(">{signed_name}</ns1:NameID>"),
        &format!(">{ALICE}<!---->.evil.com</ns1:NameID>"),
        1,
    );
    assert_ne!(injected, xml);
    assert_eq!(
        check(idp, &injected).unwrap_err(),
        SamlError::CommentOrInstruction
    );
    match samael_reduce(idp, &injected) {
        Err(e) => eprintln!("comment injection: samael alone refuses: {e}"),
        Ok(reduced) => {
            let doc = roxmltree::Document::parse(&reduced).unwrap();
            let name_id = doc
                .descendants()
                .find(|n| n.has_tag_name("NameID"))
                .unwrap();
            let text: String = name_id.children().filter_map(|c| c.text()).collect();
            eprintln!("comment injection: samael alone reduces, NameID text {text:?}");
            assert_eq!(text, signed_name, "samael changed the signed value");
        }
    }
}

// ---- refused: SAML semantics -------------------------------------------------------------------

#[test]
fn validity_windows_are_enforced() {
    let idp = idp_or_skip!();
    let expired = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--not-before",
        "-900",
        "--not-on-or-after",
        "-600",
    ]);
    assert_eq!(check(idp, &expired).unwrap_err(), SamlError::Expired);
    let future = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--not-before",
        "+600",
        "--not-on-or-after",
        "+900",
    ]);
    assert_eq!(check(idp, &future).unwrap_err(), SamlError::NotYetValid);
    // Within the 2-minute skew both ways: accepted.
    let edge = idp.xml(&[
        "--in-response-to",
        REQUEST_ID,
        "--sign-assertion",
        "--not-before",
        "+60",
        "--not-on-or-after",
        "+300",
    ]);
    assert_alice(&check(idp, &edge).unwrap());
}

#[test]
fn bindings_to_us_and_our_request_are_enforced() {
    let idp = idp_or_skip!();
    let cases = [
        (
            vec!["--audience", "https://other-sp.example/saml"],
            SamlError::AudienceMismatch,
        ),
        (
            vec!["--recipient", "https://evil.example/acs"],
            SamlError::RecipientMismatch,
        ),
        (
            vec!["--destination", "https://evil.example/acs"],
            SamlError::DestinationMismatch,
        ),
        (
            vec!["--issuer", "https://evil-idp.example/"],
            SamlError::IssuerMismatch,
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["--in-response-to", REQUEST_ID, "--sign-assertion"];
        args.extend(extra.iter().copied());
        assert_eq!(check(idp, &idp.xml(&args)).unwrap_err(), want, "{extra:?}");
    }
    let other = idp.xml(&[
        "--in-response-to",
        "_ffffffffffffffffffffffffffffffff",
        "--sign-assertion",
    ]);
    assert_eq!(
        check(idp, &other).unwrap_err(),
        SamlError::InResponseToMismatch
    );
}

#[test]
fn failed_status_and_encrypted_assertions_are_refused() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&["--in-response-to", REQUEST_ID, "--sign-assertion"]);
    let failed = xml.replace(
        "urn:oasis:names:tc:SAML:2.0:status:Success",
        "urn:oasis:names:tc:SAML:2.0:status:Requester",
    );
    assert_eq!(
        check(idp, &failed).unwrap_err(),
        SamlError::StatusNotSuccess
    );
    let mut encrypted = xml.clone();
    encrypted.replace_range(
        assertion_span(&xml),
        "<ns1:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"/></ns1:EncryptedAssertion>",
    );
    assert_eq!(
        check(idp, &encrypted).unwrap_err(),
        SamlError::EncryptedAssertionUnsupported
    );
}

// ---- refused: hostile encodings and XML ----------------------------------------------------------

#[test]
fn dtd_payloads_are_refused_before_parsing() {
    let idp = idp_or_skip!();
    let xml = idp.xml(&["--in-response-to", REQUEST_ID, "--sign-assertion"]);
    let mut laughs = String::from("<!DOCTYPE ns0:Response [<!ENTITY lol0 \"lol\">");
    for i in 1..10 {
        laughs.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&lol{};", i - 1).repeat(10)
        ));
    }
    laughs.push_str("]>");
    let billion = with_doctype(&xml, &laughs).replacen(ALICE, "&lol9;", 1);
    assert_eq!(check(idp, &billion).unwrap_err(), SamlError::DtdForbidden);
    let xxe = with_doctype(
        &xml,
        "<!DOCTYPE ns0:Response [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
    )
    .replacen(ALICE, "&xxe;", 1);
    assert_eq!(check(idp, &xxe).unwrap_err(), SamlError::DtdForbidden);
    let bare = with_doctype(&xml, "<!DOCTYPE ns0:Response>");
    assert_eq!(check(idp, &bare).unwrap_err(), SamlError::DtdForbidden);
}

#[test]
fn encoding_size_and_depth_limits() {
    let idp = idp_or_skip!();
    let sp = ServiceProvider::new(idp.connection()).unwrap();
    let now = OffsetDateTime::now_utc();
    let expected = Expected::InResponseTo(REQUEST_ID);
    assert_eq!(
        sp.validate_response("not base64!", expected, now)
            .unwrap_err(),
        SamlError::InvalidBase64
    );
    let huge = format!("<a>{}</a>", "x".repeat(300 * 1024));
    assert_eq!(
        sp.validate_response(&STANDARD.encode(&huge), expected, now)
            .unwrap_err(),
        SamlError::TooLarge
    );
    assert_eq!(
        sp.validate_response(&"A".repeat(1 << 20), expected, now)
            .unwrap_err(),
        SamlError::TooLarge
    );
    let deep = format!(
        "<ns0:Response xmlns:ns0=\"urn:oasis:names:tc:SAML:2.0:protocol\">{}{}</ns0:Response>",
        "<x>".repeat(5000),
        "</x>".repeat(5000)
    );
    assert_eq!(
        sp.validate_response(&STANDARD.encode(&deep), expected, now)
            .unwrap_err(),
        SamlError::TooDeep
    );
    // Line-wrapped base64 (as some IdPs post it) is fine.
    let xml = idp.xml(&["--in-response-to", REQUEST_ID, "--sign-assertion"]);
    let b64 = STANDARD.encode(&xml);
    let wrapped: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    assert_alice(
        &sp.validate_response(&wrapped.join("\r\n"), expected, now)
            .unwrap(),
    );
}

#[test]
fn connection_without_certificate_is_refused() {
    let idp = idp_or_skip!();
    let mut conn = idp.connection();
    conn.idp_certificates.clear();
    assert_eq!(conn.validate(), Err(ConnectionError::NoCertificate));
    assert_eq!(
        ServiceProvider::new(conn).unwrap_err(),
        SamlError::Connection(ConnectionError::NoCertificate)
    );
}
