#!/usr/bin/env python3
"""TEST-ONLY SAML 2.0 identity provider (a CLI, not a server), built on pysaml2 7.5.5,
which signs with Debian's xmlsec1 (RSA-SHA256 + exclusive c14n by default).

    idp.py keys      [--dir D]                 make the key pairs (idempotent)
    idp.py metadata  [--dir D] [--key idp|idp2|both|none] [--issuer E] [--sso-url U]
    idp.py response  [--dir D] --acs URL --audience SP_ENTITY_ID --name-id V [options]

`response` prints one base64 SAMLResponse (the HTTP-POST binding's form value) on stdout;
`--xml` prints the XML instead. Options:

    --in-response-to ID        the AuthnRequest ID (omit it for an IdP-initiated response)
    --attr NAME=VALUE          an attribute value (repeat; the same NAME twice = 2 values).
                               Names pass through unchanged (Entra's claim URIs work)
    --attr-name-format F       none (default: no NameFormat, as Entra sends) | uri | basic |
                               unspecified
    --name-id-format F         email (default) | persistent | transient | unspecified | <URI>
    --sign-assertion           sign the Assertion (enveloped signature inside it)
    --sign-response            sign the Response (both flags: both; neither: unsigned)
    --digest sha256|sha1       digest algorithm (default sha256)
    --sig-alg rsa-sha256|rsa-sha1   signature algorithm (default rsa-sha256)
    --key idp|idp2|attacker    signing key (default idp; idp2 = the IdP's second,
                               rollover certificate; attacker = a key nobody trusts)
    --issuer E                 IdP entity ID (default Entra's https://sts.windows.net/<tid>/)
    --destination URL          Response Destination (default: the ACS URL)
    --recipient URL            SubjectConfirmationData Recipient (default: the ACS URL)
    --not-on-or-after T        end of validity for Conditions and SubjectConfirmationData:
                               +SECONDS / -SECONDS from now, or an ISO-8601 UTC instant
                               (default +300)
    --not-before T             Conditions NotBefore, same syntax (default: now)
    --authn-context URI        AuthnContextClassRef (default ...:PasswordProtectedTransport;
                               Entra's MFA one is http://schemas.microsoft.com/claims/multipleauthn)
    --session-index S          AuthnStatement SessionIndex (default a random id)

Key directory (--dir, else $PROCUHELP_SAML_IDP_DIR, else /tmp/procuhelp-sso/saml):
idp.key/idp.crt, idp2.key/idp2.crt (the IdP's certificates) and attacker.key/attacker.crt,
RSA-2048 self-signed, made with openssl on first use. Verify a response with
    xmlsec1 --verify --pubkey-cert-pem idp.crt \\
        --id-attr:ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion FILE
(for a signed Response: --id-attr:ID urn:oasis:names:tc:SAML:2.0:protocol:Response).
"""

import argparse
import base64
import datetime
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from xml.sax.saxutils import quoteattr

warnings.filterwarnings("ignore", category=DeprecationWarning)
try:  # pysaml2 7.5.5 touches cryptography's deprecated CFB mode at import time.
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
except ImportError:  # pragma: no cover
    pass

try:
    import saml2
    import saml2.assertion
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
    from saml2.attribute_converter import AttributeConverter
    from saml2.config import IdPConfig
    from saml2.saml import NAME_FORMAT_BASIC, NAME_FORMAT_UNSPECIFIED, NAME_FORMAT_URI
    from saml2.server import Server
    from saml2.s_utils import factory
    from saml2 import xmldsig
except ImportError as exc:  # pragma: no cover
    sys.exit(f"ERROR: pysaml2 is not importable ({exc}); install it: python3 -m pip install pysaml2==7.5.5")

DEFAULT_TENANT_ID = "f7393f3e-c33d-4dfe-b4a8-f473310e7bf5"
KEYS = ("idp", "idp2", "attacker")
CN = {
    "idp": "procuhelp TEST SAML IdP (not secret)",
    "idp2": "procuhelp TEST SAML IdP rollover (not secret)",
    "attacker": "procuhelp TEST attacker (not secret)",
}
NAME_ID_FORMATS = {
    "email": saml.NAMEID_FORMAT_EMAILADDRESS,
    "persistent": saml.NAMEID_FORMAT_PERSISTENT,
    "transient": saml.NAMEID_FORMAT_TRANSIENT,
    "unspecified": saml.NAMEID_FORMAT_UNSPECIFIED,
}
ATTR_NAME_FORMATS = {
    "none": None,
    "uri": NAME_FORMAT_URI,
    "basic": NAME_FORMAT_BASIC,
    "unspecified": NAME_FORMAT_UNSPECIFIED,
}
DIGESTS = {"sha256": xmldsig.DIGEST_SHA256, "sha1": xmldsig.DIGEST_SHA1}
SIG_ALGS = {"rsa-sha256": xmldsig.SIG_RSA_SHA256, "rsa-sha1": xmldsig.SIG_RSA_SHA1}
# The policy's name_form when attributes carry no NameFormat: any string no converter of
# pysaml2's own uses, so only ours matches.
NO_NAME_FORMAT = "urn:procuhelp:test:no-name-format"


def die(msg):
    sys.stderr.write(f"ERROR: {msg}\n")
    sys.exit(1)


def key_dir(args):
    d = args.dir or os.environ.get("PROCUHELP_SAML_IDP_DIR") or "/tmp/procuhelp-sso/saml"
    return os.path.abspath(d)


def xmlsec_binary():
    path = os.environ.get("PROCUHELP_XMLSEC1") or shutil.which("xmlsec1")
    if not path:
        die("xmlsec1 is not on PATH (Debian package `xmlsec1`): apt-get install xmlsec1")
    return path


def ensure_keys(d):
    """Make the three key pairs in d unless they exist. Returns {name: (key, crt)}."""
    os.makedirs(d, mode=0o700, exist_ok=True)
    openssl = shutil.which("openssl") or die("openssl is not on PATH")
    out = {}
    for name in KEYS:
        key, crt = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.crt")
        if not (os.path.getsize(key) if os.path.exists(key) else 0) or not (
            os.path.getsize(crt) if os.path.exists(crt) else 0
        ):
            # Write both to temporary names, then rename: a concurrent caller never sees a
            # key without its certificate.
            fd, tmp_key = tempfile.mkstemp(dir=d, prefix=f".{name}.key.")
            os.close(fd)
            tmp_crt = tmp_key.replace(".key.", ".crt.")
            r = subprocess.run(
                [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                 "-days", "3650", "-subj", f"/CN={CN[name]}",
                 "-keyout", tmp_key, "-out", tmp_crt],
                capture_output=True, text=True,
            )
            if r.returncode != 0:
                die(f"openssl req failed for {name}: {r.stderr.strip()}")
            os.chmod(tmp_key, 0o600)
            os.replace(tmp_crt, crt)
            os.replace(tmp_key, key)
        out[name] = (key, crt)
    return out


def cert_body(crt):
    """The base64 DER of a PEM certificate (what <ds:X509Certificate> holds)."""
    with open(crt) as f:
        pem = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    if not m:
        die(f"{crt}: no PEM certificate")
    return "".join(m.group(1).split())


def parse_instant(value, now):
    """+N / -N seconds from now, or an ISO-8601 instant; returns an aware datetime."""
    if re.fullmatch(r"[+-]\d+", value):
        return now + datetime.timedelta(seconds=int(value))
    try:
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        die(f"not +SECONDS, -SECONDS or an ISO-8601 instant: {value!r}")
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t


def saml_instant(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PassThroughConverter(AttributeConverter):
    """Attribute names go out exactly as given (pysaml2's own converters drop names that
    are not in their maps, and its NOOP converter lower-cases them)."""

    def __init__(self, policy_name_format, emitted_name_format):
        super().__init__(policy_name_format)
        self.emitted = emitted_name_format

    def to_(self, attrvals):
        out = []
        for name, values in attrvals.items():
            kwargs = {"name": name, "attribute_value": [
                factory(saml.AttributeValue, text=str(v)) for v in values
            ]}
            # saml.Attribute defaults NameFormat to uri; None leaves it out.
            kwargs["name_format"] = self.emitted
            out.append(factory(saml.Attribute, **kwargs))
        return out


def sp_metadata(entity_id, acs):
    """Minimal SP metadata: pysaml2 looks the SP up when it signs the Response."""
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f"entityID={quoteattr(entity_id)}>"
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        f'Location={quoteattr(acs)} index="0"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def make_server(d, issuer, sso_url, key, cert, name_format, lifetime_seconds, digest, sig_alg, sp=None):
    conf = {
        "entityid": issuer,
        "xmlsec_binary": xmlsec_binary(),
        "key_file": key,
        "cert_file": cert,
        "metadata": {"inline": [sp_metadata(*sp)]} if sp else {},
        "service": {
            "idp": {
                "endpoints": {
                    "single_sign_on_service": [
                        (sso_url, BINDING_HTTP_REDIRECT),
                        (sso_url, BINDING_HTTP_POST),
                    ],
                },
                "name_id_format": list(NAME_ID_FORMATS.values()),
                "policy": {
                    "default": {
                        "lifetime": {"seconds": lifetime_seconds},
                        "attribute_restrictions": None,
                        "name_form": name_format,
                        "entity_categories": [],
                    },
                },
                "signing_algorithm": sig_alg,
                "digest_algorithm": digest,
            },
        },
    }
    cfg = IdPConfig()
    cfg.load(conf)
    return Server(config=cfg)


def default_issuer():
    tid = os.environ.get("PROCUHELP_SAML_TENANT_ID") or os.environ.get("PROCUHELP_OIDC_TENANT_ID") or DEFAULT_TENANT_ID
    return f"https://sts.windows.net/{tid}/"


def default_sso_url(issuer):
    tid = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", issuer)
    return f"https://login.microsoftonline.com/{tid.group(0) if tid else DEFAULT_TENANT_ID}/saml2"


# ---- commands ---------------------------------------------------------------------------


def cmd_keys(args):
    for name, (key, crt) in ensure_keys(key_dir(args)).items():
        print(f"{name}: {key} {crt}")


def cmd_metadata(args):
    """Entra-like IdP metadata, written by hand (pysaml2's own adds an algorithm-support
    extension listing md5 and the like). --key none leaves out every certificate: an SP
    must refuse such a connection rather than skip verification."""
    keys = ensure_keys(key_dir(args))
    issuer = args.issuer or default_issuer()
    sso_url = args.sso_url or default_sso_url(issuer)
    names = {"idp": ["idp"], "idp2": ["idp2"], "both": ["idp", "idp2"], "none": []}[args.key]
    key_descriptors = "".join(
        '<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">'
        f"<X509Data><X509Certificate>{cert_body(keys[n][1])}</X509Certificate></X509Data>"
        "</KeyInfo></KeyDescriptor>"
        for n in names
    )
    sso = "".join(
        f'<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:{b}" Location={quoteattr(sso_url)}/>'
        for b in ("HTTP-Redirect", "HTTP-POST")
    )
    doc_id = hashlib.sha256((issuer + sso_url + key_descriptors).encode()).hexdigest()[:32]
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" ID="_{doc_id}" '
        f"entityID={quoteattr(issuer)}>"
        '<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key_descriptors}"
        "<NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</NameIDFormat>"
        "<NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</NameIDFormat>"
        f"{sso}"
        "</IDPSSODescriptor></EntityDescriptor>\n"
    )
    sys.stdout.write(xml)


def cmd_response(args):
    keys = ensure_keys(key_dir(args))
    issuer = args.issuer or default_issuer()
    now = datetime.datetime.now(datetime.timezone.utc)
    not_on_or_after = parse_instant(args.not_on_or_after, now)
    lifetime = int((not_on_or_after - now).total_seconds())

    emitted = ATTR_NAME_FORMATS[args.attr_name_format]
    policy_name_format = emitted or NO_NAME_FORMAT
    key, crt = keys[args.key]
    server = make_server(key_dir(args), issuer, default_sso_url(issuer), key, crt,
                         policy_name_format, lifetime, DIGESTS[args.digest], SIG_ALGS[args.sig_alg],
                         sp=(args.audience, args.acs))
    server.config.attribute_converters = [PassThroughConverter(policy_name_format, emitted)]

    identity = {}
    for a in args.attr:
        if "=" not in a:
            die(f"--attr wants NAME=VALUE, got {a!r}")
        name, value = a.split("=", 1)
        identity.setdefault(name, []).append(value)

    fmt = NAME_ID_FORMATS.get(args.name_id_format, args.name_id_format)
    name_id = saml.NameID(format=fmt, text=args.name_id)
    authn = {
        "class_ref": args.authn_context,
        "authn_instant": int(now.timestamp()),
    }

    # Conditions NotBefore is "now" in pysaml2; --not-before replaces that instant (only
    # there: saml2.assertion.instant is used for Conditions and nothing else we emit).
    if args.not_before is not None:
        fixed = saml_instant(parse_instant(args.not_before, now))
        saml2.assertion.instant = lambda *a, **k: fixed

    kwargs = {}
    if args.session_index:
        kwargs["session_index"] = args.session_index
    if args.recipient:
        # SubjectConfirmationData Recipient other than the Destination (wrong-recipient tests).
        kwargs["farg"] = {"assertion": {"subject": {"subject_confirmation": {
            "method": saml.SCM_BEARER,
            "subject_confirmation_data": {"recipient": args.recipient, "in_response_to": args.in_response_to},
        }}}}
    resp = server.create_authn_response(
        identity,
        args.in_response_to,
        args.destination or args.acs,
        args.audience,
        name_id=name_id,
        authn=authn,
        sign_assertion=args.sign_assertion,
        sign_response=args.sign_response,
        sign_alg=SIG_ALGS[args.sig_alg],
        digest_alg=DIGESTS[args.digest],
        **kwargs,
    )
    xml = str(resp)
    if ":Assertion" not in xml:
        die(f"pysaml2 did not produce an assertion:\n{xml}")
    if args.xml:
        sys.stdout.write(xml + ("" if xml.endswith("\n") else "\n"))
    else:
        sys.stdout.write(base64.b64encode(xml.encode("utf-8")).decode("ascii") + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--dir", help="key directory (default $PROCUHELP_SAML_IDP_DIR or /tmp/procuhelp-sso/saml)")

    sp = sub.add_parser("keys", help="make the key pairs (idempotent)")
    common(sp)
    sp.set_defaults(func=cmd_keys)

    sp = sub.add_parser("metadata", help="print the IdP metadata XML")
    common(sp)
    sp.add_argument("--key", choices=["idp", "idp2", "both", "none"], default="idp")
    sp.add_argument("--issuer")
    sp.add_argument("--sso-url")
    sp.set_defaults(func=cmd_metadata)

    sp = sub.add_parser("response", help="print a base64 SAMLResponse")
    common(sp)
    sp.add_argument("--acs", required=True, help="the SP's AssertionConsumerService URL")
    sp.add_argument("--audience", required=True, help="the SP's entity ID")
    sp.add_argument("--name-id", required=True)
    sp.add_argument("--name-id-format", default="email")
    sp.add_argument("--in-response-to")
    sp.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE")
    sp.add_argument("--attr-name-format", choices=list(ATTR_NAME_FORMATS), default="none")
    sp.add_argument("--sign-assertion", action="store_true")
    sp.add_argument("--sign-response", action="store_true")
    sp.add_argument("--digest", choices=list(DIGESTS), default="sha256")
    sp.add_argument("--sig-alg", choices=list(SIG_ALGS), default="rsa-sha256")
    sp.add_argument("--key", choices=list(KEYS), default="idp")
    sp.add_argument("--issuer")
    sp.add_argument("--destination")
    sp.add_argument("--recipient")
    sp.add_argument("--not-on-or-after", default="+300")
    sp.add_argument("--not-before")
    sp.add_argument("--authn-context", default="urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
    sp.add_argument("--session-index")
    sp.add_argument("--xml", action="store_true", help="print the XML instead of base64")
    sp.set_defaults(func=cmd_response)

    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
