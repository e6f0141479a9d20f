#!/usr/bin/env python3
"""Cross-check OpenBao Transit's aes256-gcm96 ciphertexts against an independent AES-GCM.

Run against a server started by scripts/openbao.sh:

    eval "$(scripts/openbao.sh env)"
    python3 scripts/openbao-transit-crosscheck.py

Creates an exportable key `procuhelp-crosscheck-<random>` (root token), exports its raw
key versions, and checks, with the `cryptography` package's AESGCM:
  1. Transit ciphertext -> local decrypt, without and with associated_data;
  2. local encrypt in the `vault:v<N>:` format -> Transit decrypt, without and with AAD;
  3. wrong/missing AAD fails on both sides; a rotated key uses the new version's key;
  4. datakey/plaintext: the wrapped key decrypts locally to the returned plaintext key.
Format: "vault:v" + key version + ":" + base64(nonce[12] || ciphertext || tag[16]),
standard base64 with padding; AAD is sent base64-encoded in `associated_data` and used
as the raw GCM AAD (the decoded bytes). Exits non-zero on the first mismatch.
"""

import base64
import json
import os
import secrets
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ADDR = os.environ["PROCUHELP_OPENBAO_ADDR"]
with open(os.environ["PROCUHELP_OPENBAO_TOKEN_FILE"]) as f:
    TOKEN = f.read().strip()

b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
unb64 = base64.b64decode


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{ADDR}/v1/{path}", data=data, method=method)
    req.add_header("X-Vault-Token", TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)


def ok(method, path, body=None):
    status, doc = api(method, path, body)
    if status // 100 != 2:
        sys.exit(f"FAIL: {method} {path} -> {status} {doc}")
    return doc


def parse(ct):
    prefix, version, blob = ct.split(":", 2)
    assert prefix == "vault" and version.startswith("v"), ct
    raw = unb64(blob)
    return int(version[1:]), raw[:12], raw[12:]  # version, nonce, ciphertext||tag


def local_decrypt(keys, ct, aad=None):
    version, nonce, body = parse(ct)
    return AESGCM(keys[version]).decrypt(nonce, body, aad)


def local_encrypt(keys, version, pt, aad=None):
    nonce = secrets.token_bytes(12)
    return f"vault:v{version}:" + b64(nonce + AESGCM(keys[version]).encrypt(nonce, pt, aad))


def export(name):
    doc = ok("GET", f"transit/export/encryption-key/{name}")
    return {int(v): unb64(k) for v, k in doc["data"]["keys"].items()}


def check(label, cond):
    print(f"{'ok  ' if cond else 'FAIL'} {label}")
    if not cond:
        sys.exit(1)


def main():
    name = f"procuhelp-crosscheck-{secrets.token_hex(4)}"
    ok("POST", f"transit/keys/{name}", {"type": "aes256-gcm96", "exportable": True})
    keys = export(name)
    check("export: one 32-byte key for version 1", list(keys) == [1] and len(keys[1]) == 32)

    pt = b"procuhelp cross-check \x00\xff"
    aad = b"tenant=42;record=7"

    # 1. Transit -> local
    ct = ok("POST", f"transit/encrypt/{name}", {"plaintext": b64(pt)})["data"]["ciphertext"]
    v, nonce, body = parse(ct)
    check(f"ciphertext layout v{v}: 12-byte nonce + {len(pt)}-byte ct + 16-byte tag",
          v == 1 and len(nonce) == 12 and len(body) == len(pt) + 16)
    check("Transit ciphertext decrypts locally (no AAD)", local_decrypt(keys, ct) == pt)
    ct_aad = ok("POST", f"transit/encrypt/{name}",
                {"plaintext": b64(pt), "associated_data": b64(aad)})["data"]["ciphertext"]
    check("Transit ciphertext decrypts locally with the raw AAD bytes",
          local_decrypt(keys, ct_aad, aad) == pt)
    for wrong in (None, b"tenant=43;record=7", b64(aad).encode()):
        try:
            local_decrypt(keys, ct_aad, wrong)
            check(f"local decrypt refuses AAD {wrong!r}", False)
        except InvalidTag:
            check(f"local decrypt refuses AAD {wrong!r}", True)

    # 2. local -> Transit
    mine = local_encrypt(keys, 1, pt)
    out = ok("POST", f"transit/decrypt/{name}", {"ciphertext": mine})["data"]["plaintext"]
    check("local ciphertext decrypts in Transit (no AAD)", unb64(out) == pt)
    mine_aad = local_encrypt(keys, 1, pt, aad)
    out = ok("POST", f"transit/decrypt/{name}",
             {"ciphertext": mine_aad, "associated_data": b64(aad)})["data"]["plaintext"]
    check("local ciphertext with AAD decrypts in Transit", unb64(out) == pt)
    status, doc = api("POST", f"transit/decrypt/{name}", {"ciphertext": mine_aad})
    check(f"Transit refuses it without AAD: {status} {doc}", status == 400)
    status, doc = api("POST", f"transit/decrypt/{name}",
                      {"ciphertext": mine_aad, "associated_data": b64(b"other")})
    check(f"Transit refuses it with another AAD: {status} {doc}", status == 400)

    # 3. rotation: version 2 has its own key; both versions stay decryptable
    ok("POST", f"transit/keys/{name}/rotate")
    keys = export(name)
    check("after rotate: export has versions 1 and 2, different keys",
          sorted(keys) == [1, 2] and keys[1] != keys[2])
    ct2 = ok("POST", f"transit/encrypt/{name}",
             {"plaintext": b64(pt), "associated_data": b64(aad)})["data"]["ciphertext"]
    check("new ciphertext is vault:v2 and decrypts locally with key v2",
          ct2.startswith("vault:v2:") and local_decrypt(keys, ct2, aad) == pt)
    mine2 = local_encrypt(keys, 2, pt, aad)
    out = ok("POST", f"transit/decrypt/{name}",
             {"ciphertext": mine2, "associated_data": b64(aad)})["data"]["plaintext"]
    check("local vault:v2 ciphertext decrypts in Transit", unb64(out) == pt)
    forged = "vault:v1:" + mine2.split(":", 2)[2]
    status, _ = api("POST", f"transit/decrypt/{name}",
                    {"ciphertext": forged, "associated_data": b64(aad)})
    check("v2 ciphertext relabelled v1 is refused by Transit", status == 400)

    # 4. datakey
    dk = ok("POST", f"transit/datakey/plaintext/{name}", {"bits": 256})["data"]
    check("datakey/plaintext: wrapped key decrypts locally to the 32-byte plaintext key",
          len(unb64(dk["plaintext"])) == 32
          and local_decrypt(keys, dk["ciphertext"]) == unb64(dk["plaintext"]))
    dk = ok("POST", f"transit/datakey/plaintext/{name}",
            {"bits": 256, "associated_data": b64(aad)})["data"]
    check("datakey/plaintext with associated_data: wrapped with that AAD",
          local_decrypt(keys, dk["ciphertext"], aad) == unb64(dk["plaintext"]))

    ok("POST", f"transit/keys/{name}/config", {"deletion_allowed": True})
    ok("DELETE", f"transit/keys/{name}")
    print("all checks passed")


if __name__ == "__main__":
    main()
