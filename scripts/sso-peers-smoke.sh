#!/usr/bin/env bash
# Smoke test of the SSO test peers (scripts/sso-peers.sh), without cargo:
#   1. starts a private set of peers (own state directory, own port) and stops it at exit;
#   2. OIDC: discovery (Entra issuer, loopback endpoints), a complete authorization-code +
#      PKCE (S256) flow with plain HTTP requests and a cookie jar, ending in a token
#      response whose ID token (RS256, checked against the JWKS) carries the Entra issuer,
#      aud, nonce, tid, oid, groups, amr; the explicit /interaction/<uid>/login path with
#      an amr override; groups overage; userinfo; and the OP's own refusals (missing PKCE,
#      wrong code_verifier, replayed code, wrong client secret);
#   3. forge.mjs: every mode, each checked independently (RSA verify / HMAC / alg none),
#      including the JWKS rollover switch;
#   4. SAML: pysaml2 responses signed over the assertion, the response and both, verified
#      with `xmlsec1 --verify --pubkey-cert-pem idp.crt --id-attr:ID ...`; unsigned and
#      attacker-signed ones are not accepted by xmlsec1; the metadata parses;
#   5. scim2 --help and scim2 test --help run.
# Exit 0 only if everything passed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PEERS=$PROCUHELP_ROOT/scripts/sso-peers.sh
export PROCUHELP_SSO_DIR
PROCUHELP_SSO_DIR=$(mktemp -d /tmp/procuhelp-sso-smoke.XXXXXX)
WORK=$PROCUHELP_SSO_DIR/work

cleanup() {
    local rc=$?
    "$PEERS" stop >/dev/null 2>&1 || warn "sso-smoke: stopping the peers failed"
    if ((rc == 0)); then
        rm -rf "$PROCUHELP_SSO_DIR"
    else
        warn "sso-smoke: FAILED (exit $rc); state kept in $PROCUHELP_SSO_DIR"
    fi
}
trap cleanup EXIT

t0=$(date +%s)
"$PEERS" start >/dev/null
eval "$("$PEERS" env)"
"$PEERS" status >/dev/null
mkdir -p "$WORK"

# ---- 2 + 3: OIDC flow and forged tokens (Python: requests + cryptography) -------------
log "sso-smoke: OIDC flow and forge modes against $PROCUHELP_OIDC_ADDR"
python3 -W ignore - <<'PY'
import base64, hashlib, hmac, json, os, secrets, subprocess, sys, urllib.parse as up

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

E = os.environ
ISSUER, CLIENT_ID, TID = E["PROCUHELP_OIDC_ISSUER"], E["PROCUHELP_OIDC_CLIENT_ID"], E["PROCUHELP_OIDC_TENANT_ID"]
ADDR = E["PROCUHELP_OIDC_ADDR"]
SECRET = open(E["PROCUHELP_OIDC_CLIENT_SECRET_FILE"]).read().strip()
FORGE = E["PROCUHELP_OIDC_FORGE"]
ALICE_OID = "15c3cd26-a73b-4031-9bb6-f765472dc802"
ADMINS, APPROVERS = "65df403a-b4b0-457b-a977-0841ac8f8e7c", "9b4b6468-7d2e-45f3-a045-7955a73ca30a"
checks = 0


def check(cond, what, detail=""):
    global checks
    if not cond:
        sys.exit(f"FAIL: {what} {detail}")
    checks += 1
    print(f"  ok  {what}")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def parts(tok):
    h, p, s = tok.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p)), b64d(s), f"{h}.{p}".encode()


# Discovery: Entra issuer string, endpoints on the loopback port.
disc = requests.get(E["PROCUHELP_OIDC_DISCOVERY_URL"], timeout=5).json()
check(disc["issuer"] == ISSUER and ISSUER == f"https://login.microsoftonline.com/{TID}/v2.0", "discovery issuer is the Entra v2.0 one", disc["issuer"])
for ep in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
    check(disc[ep].startswith(ADDR + "/"), f"discovery {ep} is on the loopback port", disc[ep])
check(disc["code_challenge_methods_supported"] == ["S256"], "only S256 PKCE advertised")
tmpl = requests.get(f"{ADDR}/common/v2.0/.well-known/openid-configuration", timeout=5).json()
check(tmpl["issuer"] == "https://login.microsoftonline.com/{tenantid}/v2.0", "common/ discovery has the multi-tenant issuer template")

jwks = requests.get(disc["jwks_uri"], timeout=5).json()["keys"]
check(len(jwks) == 1 and jwks[0]["kty"] == "RSA", "JWKS has one RSA key")


def rsa_key(jwk):
    n = int.from_bytes(b64d(jwk["n"]), "big")
    e = int.from_bytes(b64d(jwk["e"]), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def rs256_ok(tok, keys):
    h, _, sig, signing_input = parts(tok)
    for k in keys:
        if k["kid"] != h.get("kid"):
            continue
        try:
            rsa_key(k).verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        except Exception:
            return False
    return False


REDIRECT = "http://127.0.0.1:45999/sso/org-7f3a/oidc/callback"  # any loopback port and path


def authorize(jar, login_hint=None, pkce=True, extra=None):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    q = dict(client_id=CLIENT_ID, response_type="code", scope="openid profile email offline_access",
             redirect_uri=REDIRECT, state=state, nonce=nonce, prompt="consent")
    if pkce:
        q.update(code_challenge=challenge, code_challenge_method="S256")
    if login_hint:
        q["login_hint"] = login_hint
    q.update(extra or {})
    return jar.get(disc["authorization_endpoint"], params=q, allow_redirects=False, timeout=5), verifier, state, nonce


def follow(jar, r):
    """Follow redirects with the cookie jar until the redirect_uri (never fetched)."""
    for _ in range(10):
        if r.status_code not in (302, 303):
            return r, None
        loc = up.urljoin(r.url, r.headers["location"])
        if loc.startswith(REDIRECT):
            return r, dict(up.parse_qsl(up.urlsplit(loc).query))
        r = jar.get(loc, allow_redirects=False, timeout=5)
    sys.exit("FAIL: redirect loop")


def token(code, verifier, secret=SECRET):
    return requests.post(disc["token_endpoint"], timeout=5, auth=(CLIENT_ID, secret), data=dict(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier))


# 1. alice, login_hint on the authorization request: one redirect chain to the redirect_uri.
jar = requests.Session()
r, verifier, state, nonce = authorize(jar, "alice")
r, cb = follow(jar, r)
check(cb is not None and "code" in cb, "code flow ends at the redirect_uri with a code", str(cb))
check(cb["state"] == state, "state comes back unchanged")
check(cb.get("iss") == ISSUER, "authorization response carries iss (RFC 9207)")
t = token(cb["code"], verifier)
check(t.status_code == 200, "token endpoint accepts code + code_verifier + client_secret_basic", t.text)
tr = t.json()
check(tr["token_type"].lower() == "bearer" and "access_token" in tr and "refresh_token" in tr, "token response has access and refresh tokens")
h, c, _, _ = parts(tr["id_token"])
check(h["alg"] == "RS256" and h["kid"] == jwks[0]["kid"], "ID token is RS256 with the JWKS kid", str(h))
check(rs256_ok(tr["id_token"], jwks), "ID token signature verifies against the JWKS")
check(c["iss"] == ISSUER, "ID token iss is the Entra issuer string", c["iss"])
check(c["aud"] == CLIENT_ID, "ID token aud is the client id")
check(c["nonce"] == nonce, "ID token nonce is the request's")
check(c["tid"] == TID, "ID token tid")
check(c["oid"] == ALICE_OID and c["sub"] != c["oid"], "ID token oid (and a pairwise-looking sub != oid)")
check(sorted(c["groups"]) == sorted([ADMINS, APPROVERS]), "ID token groups", str(c.get("groups")))
check(c["amr"] == ["pwd", "mfa"], "ID token amr has mfa", str(c.get("amr")))
check(c["ver"] == "2.0" and c["preferred_username"] == "alice@contoso.example" and c["email"] and c["name"], "ID token ver/preferred_username/email/name")
check(c["exp"] > c["iat"], "ID token exp > iat")
ui = requests.get(disc["userinfo_endpoint"], headers={"Authorization": f"Bearer {tr['access_token']}"}, timeout=5)
check(ui.status_code == 200 and ui.json()["oid"] == ALICE_OID, "userinfo answers with the access token", ui.text[:200])
again = token(cb["code"], verifier)
check(again.status_code == 400 and again.json()["error"] == "invalid_grant", "replayed code is refused (invalid_grant)", again.text)

# 2. No login_hint: the interaction answers JSON; the explicit login URL with an amr override.
jar = requests.Session()
r, verifier, state, nonce = authorize(jar)
r, cb = follow(jar, r)
check(cb is None and r.status_code == 200 and r.json()["login"].startswith("/interaction/"), "without login_hint the interaction asks which account")
r = jar.get(up.urljoin(r.url, r.json()["login"] + "bob&amr=pwd"), allow_redirects=False, timeout=5)
r, cb = follow(jar, r)
check(cb is not None and cb["state"] == state, "/interaction/<uid>/login?login_hint=bob completes the flow")
tr = token(cb["code"], verifier).json()
_, c, _, _ = parts(tr["id_token"])
check(c["amr"] == ["pwd"] and c["groups"] == ["a8fa8371-9126-4886-affc-323a1c0f44f4"], "bob: amr without mfa, buyer group", str(c))

# 3. Groups overage (carol): _claim_names/_claim_sources instead of groups.
jar = requests.Session()
r, verifier, state, nonce = authorize(jar, "carol")
r, cb = follow(jar, r)
_, c, _, _ = parts(token(cb["code"], verifier).json()["id_token"])
check("groups" not in c and c["_claim_names"] == {"groups": "src1"} and "graph.microsoft.com" in c["_claim_sources"]["src1"]["endpoint"], "carol: groups overage claims", str(c))

# 4. The OP's own refusals.
jar = requests.Session()
r, verifier, state, nonce = authorize(jar, "alice", pkce=False)
r, cb = follow(jar, r)
check(cb is not None and cb.get("error") == "invalid_request" and "PKCE" in cb.get("error_description", ""), "authorization without PKCE is refused", str(cb))
jar = requests.Session()
r, verifier, state, nonce = authorize(jar, "alice")
r, cb = follow(jar, r)
bad = token(cb["code"], verifier + "x")
check(bad.status_code == 400 and bad.json()["error"] == "invalid_grant", "wrong code_verifier is refused", bad.text)
jar = requests.Session()
r, verifier, state, nonce = authorize(jar, "alice")
r, cb = follow(jar, r)
bad = token(cb["code"], verifier, secret="not-the-secret-at-all")
check(bad.status_code == 401 and bad.json()["error"] == "invalid_client", "wrong client secret is refused", bad.text)

# 5. forge.mjs, every mode.
def forge(claims, *args):
    return subprocess.run(["node", FORGE, json.dumps(claims), *args], check=True, capture_output=True, text=True).stdout.strip()


real_jwk = jwks[0]
tok = forge({"nonce": "n-1", "tid": "9ea5142f-4003-4f72-bd41-7b39ccba08e3"})
h, c, _, _ = parts(tok)
check(rs256_ok(tok, jwks) and c["tid"] == "9ea5142f-4003-4f72-bd41-7b39ccba08e3" and c["iss"] == ISSUER and c["aud"] == CLIENT_ID and c["nonce"] == "n-1", "forge real: valid RS256 signature, claims overridden")
tok = forge({"nonce": None, "exp": 1000}, "--mode=real")
_, c, _, _ = parts(tok)
check("nonce" not in c and c["exp"] == 1000, "forge: null removes a claim, numbers kept")
tok = forge({}, "--mode=other-key")
h, _, _, _ = parts(tok)
check(h["kid"] == real_jwk["kid"] and not rs256_ok(tok, jwks), "forge other-key: same kid, signature does not verify")
tok = forge({}, "--mode=rollover")
h, _, _, _ = parts(tok)
check(h["kid"] != real_jwk["kid"] and not rs256_ok(tok, jwks), "forge rollover: unknown kid before the switch")
sw = requests.put(f"{ADDR}/_test/jwks", params={"keys": "main,rollover"}, timeout=5)
jwks2 = requests.get(disc["jwks_uri"], timeout=5).json()["keys"]
check(sw.status_code == 200 and len(jwks2) == 2 and rs256_ok(tok, jwks2), "after PUT /_test/jwks?keys=main,rollover the rollover token verifies")
requests.put(f"{ADDR}/_test/jwks", params={"keys": "main"}, timeout=5)
stats = requests.get(f"{ADDR}/_test/stats", timeout=5).json()
check(stats["jwks"] >= 2 and stats["token"] >= 1, "/_test/stats counts requests", str(stats))
tok = forge({}, "--mode=none")
h, c, sig, _ = parts(tok)
check(h == {"alg": "none"} and sig == b"" and tok.endswith(".") and c["oid"] == ALICE_OID, "forge none: alg none, empty signature")
pem = serialization.load_pem_public_key(open(os.path.join(os.path.dirname(FORGE), "keys", "test-signing-key.public.pem"), "rb").read())
check(pem.public_numbers() == rsa_key(real_jwk).public_numbers(), "committed public PEM is the served JWKS key")
served_jwk = json.dumps(real_jwk, separators=(",", ":")).encode()
for mode, secret in [
    ("hs256-pem", pem.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
    ("hs256-jwk", served_jwk),
    ("hs256-n", b64d(real_jwk["n"])),
]:
    tok = forge({}, f"--mode={mode}")
    h, _, sig, si = parts(tok)
    check(h["alg"] == "HS256" and hmac.compare_digest(sig, hmac.new(secret, si, hashlib.sha256).digest()), f"forge {mode}: HS256 keyed with the public key")

print(f"OIDC: {checks} checks passed")
PY

# ---- 4: SAML ---------------------------------------------------------------------------
log "sso-smoke: SAML responses signed by pysaml2 + xmlsec1"
IDP=$PROCUHELP_SAML_IDP
CRT=$PROCUHELP_SAML_IDP_DIR/idp.crt
ASSERTION_ID='urn:oasis:names:tc:SAML:2.0:assertion:Assertion'
RESPONSE_ID='urn:oasis:names:tc:SAML:2.0:protocol:Response'
saml_checks=0
ok() {
    saml_checks=$((saml_checks + 1))
    echo "  ok  $*"
}
fail() { die "sso-smoke: $*"; }

response() { # NAME FLAGS...: base64 from idp.py, decoded into $WORK/NAME.xml
    local name=$1
    shift
    python3 "$IDP" response --acs http://127.0.0.1:45999/sso/org-7f3a/saml/acs \
        --audience https://procuhelp.test/sso/org-7f3a/saml \
        --name-id alice@contoso.example --in-response-to _3c5d1f0e8b7a69524d3e2f1a0b9c8d7e \
        --attr http://schemas.microsoft.com/identity/claims/tenantid="$PROCUHELP_OIDC_TENANT_ID" \
        --attr http://schemas.microsoft.com/identity/claims/objectidentifier=15c3cd26-a73b-4031-9bb6-f765472dc802 \
        --attr http://schemas.microsoft.com/ws/2008/06/identity/claims/groups=65df403a-b4b0-457b-a977-0841ac8f8e7c \
        --attr http://schemas.microsoft.com/ws/2008/06/identity/claims/groups=9b4b6468-7d2e-45f3-a045-7955a73ca30a \
        "$@" >"$WORK/$name.b64"
    base64 -d "$WORK/$name.b64" >"$WORK/$name.xml"
}
verify() { # FILE CERT ID-ATTR... : xmlsec1 verdict
    local file=$1 cert=$2
    shift 2
    local ids=()
    local id
    for id in "$@"; do ids+=(--id-attr:ID "$id"); done
    xmlsec1 --verify --pubkey-cert-pem "$cert" "${ids[@]}" "$file" >"$file.verify" 2>&1
}

response assertion --sign-assertion
grep -q 'Assertion.*<ns2:Signature' "$WORK/assertion.xml" || fail "assertion-signed response has no signature in the assertion"
verify "$WORK/assertion.xml" "$CRT" "$ASSERTION_ID" || fail "xmlsec1 rejects the assertion signature: $(cat "$WORK/assertion.xml.verify")"
grep -q '^OK$' "$WORK/assertion.xml.verify" || fail "xmlsec1 did not say OK"
ok "assertion-signed: xmlsec1 --verify --pubkey-cert-pem idp.crt --id-attr:ID $ASSERTION_ID -> OK"
grep -q 'xml-exc-c14n#' "$WORK/assertion.xml" && grep -q 'xmldsig-more#rsa-sha256' "$WORK/assertion.xml" &&
    grep -q 'xmlenc#sha256' "$WORK/assertion.xml" || fail "not RSA-SHA256 + SHA-256 digest + exclusive c14n"
ok "signature is RSA-SHA256, SHA-256 digest, exclusive c14n"
grep -q 'Name="http://schemas.microsoft.com/identity/claims/objectidentifier"' "$WORK/assertion.xml" ||
    fail "the Entra attribute names did not pass through"
ok "Entra attribute names pass through (no NameFormat)"
grep -q 'InResponseTo="_3c5d1f0e8b7a69524d3e2f1a0b9c8d7e"' "$WORK/assertion.xml" &&
    grep -q 'Recipient="http://127.0.0.1:45999/sso/org-7f3a/saml/acs"' "$WORK/assertion.xml" &&
    grep -q '<ns1:Audience>https://procuhelp.test/sso/org-7f3a/saml</ns1:Audience>' "$WORK/assertion.xml" ||
    fail "InResponseTo/Recipient/Audience missing"
ok "InResponseTo, Recipient and Audience as requested"

response response --sign-response
verify "$WORK/response.xml" "$CRT" "$RESPONSE_ID" || fail "xmlsec1 rejects the response signature: $(cat "$WORK/response.xml.verify")"
ok "response-signed: xmlsec1 --id-attr:ID $RESPONSE_ID -> OK"

response both --sign-assertion --sign-response
[[ $(grep -o '<ns2:Signature ' "$WORK/both.xml" | wc -l) == 2 ]] || fail "both-signed response does not have two signatures"
verify "$WORK/both.xml" "$CRT" "$RESPONSE_ID" "$ASSERTION_ID" || fail "xmlsec1 rejects the outer signature of the both-signed response"
xmlsec1 --verify --pubkey-cert-pem "$CRT" --id-attr:ID "$ASSERTION_ID" \
    --node-xpath "//*[local-name()='Assertion']/*[local-name()='Signature']" "$WORK/both.xml" >/dev/null 2>&1 ||
    fail "xmlsec1 rejects the assertion signature inside the both-signed response"
ok "both-signed: the Response and the Assertion signatures verify"

response sha1 --sign-assertion --digest sha1 --sig-alg rsa-sha1
verify "$WORK/sha1.xml" "$CRT" "$ASSERTION_ID" && grep -q 'xmldsig#rsa-sha1' "$WORK/sha1.xml" || fail "sha1 variant"
ok "--digest sha1 --sig-alg rsa-sha1 produces a valid SHA-1 signature"

response unsigned
! grep -q 'Signature' "$WORK/unsigned.xml" || fail "unsigned response has a signature"
! verify "$WORK/unsigned.xml" "$CRT" "$ASSERTION_ID" || fail "xmlsec1 accepted an unsigned response"
ok "unsigned: no signature, xmlsec1 refuses it"

response attacker --sign-assertion --key attacker
! verify "$WORK/attacker.xml" "$CRT" "$ASSERTION_ID" || fail "xmlsec1 accepted a response signed by the attacker key against idp.crt"
verify "$WORK/attacker.xml" "$PROCUHELP_SAML_IDP_DIR/attacker.crt" "$ASSERTION_ID" || fail "attacker-signed response is not validly signed by its own key"
ok "attacker key: valid signature, but not with idp.crt"

response expired --sign-assertion --not-on-or-after -120
python3 - "$WORK/expired.xml" <<'PY' || fail "--not-on-or-after -120 was not applied"
import datetime, re, sys
now = datetime.datetime.now(datetime.timezone.utc)
found = re.findall(r'NotOnOrAfter="([^"]+)"', open(sys.argv[1]).read())
assert len(found) == 2, found  # SubjectConfirmationData and Conditions
for t in found:
    age = (now - datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))).total_seconds()
    assert 100 <= age <= 180, (t, age)
PY
verify "$WORK/expired.xml" "$CRT" "$ASSERTION_ID" || fail "expired response is not validly signed"
ok "--not-on-or-after -120: signed, already expired"

python3 "$IDP" metadata --key both >"$WORK/metadata.xml"
python3 - "$WORK/metadata.xml" "$CRT" <<'PY' || fail "IdP metadata"
import sys, xml.etree.ElementTree as ET
doc = ET.parse(sys.argv[1]).getroot()
ns = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": "http://www.w3.org/2000/09/xmldsig#"}
certs = [c.text for c in doc.findall(".//md:KeyDescriptor[@use='signing']//ds:X509Certificate", ns)]
pem = "".join(l for l in open(sys.argv[2]).read().splitlines() if "CERTIFICATE" not in l)
assert doc.get("entityID").startswith("https://sts.windows.net/"), doc.get("entityID")
assert len(certs) == 2 and certs[0] == pem, certs
PY
ok "metadata --key both: Entra-like entityID, two signing certificates, the first is idp.crt"
echo "SAML: $saml_checks checks passed"

# ---- 5: SCIM conformance checker ---------------------------------------------------------
scim2 --help >/dev/null || fail "scim2 --help failed"
scim2 test --help | grep -q -- '--check-status-code' || fail "scim2 test --help lacks its options"
echo "  ok  scim2 --help and scim2 test --help run ($(python3 -c 'from importlib.metadata import version; print("scim2-cli", version("scim2-cli"))'))"

log "sso-smoke: all passed in $(($(date +%s) - t0))s"
