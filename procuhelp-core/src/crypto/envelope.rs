//! The versioned ciphertext format and its associated data.
//!
//! ```text
//! byte 0       format (0x01)
//! bytes 1..5   data-key version, u32 big-endian
//! bytes 5..17  nonce (96 bits, random)
//! bytes 17..   ciphertext ‖ tag (128 bits)
//! ```
//! The associated data is `"procuhelp/v1" ‖ header (bytes 0..5) ‖ context`, so neither the
//! version nor the place the value belongs to can be changed without failing
//! authentication.

use super::aead::{AeadProvider, PreparedKey};
use super::key::{CryptoError, DataKey, NONCE_LEN, TAG_LEN, random_nonce};
use crate::OrgId;

/// The current format byte.
pub const FORMAT_V1: u8 = 0x01;
/// Header length: format byte, key version, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const DOMAIN: &[u8] = b"procuhelp/v1";

/// Where a ciphertext belongs; it is authenticated, not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aad {
    encoded: Vec<u8>,
}

impl Aad {
    /// A field of a row: tenant, table, column and row id.
    pub fn field(org: OrgId, table: &str, column: &str, row: &str) -> Self {
        let mut aad = Self {
            encoded: Vec::with_capacity(64),
        };
        aad.push(b"field");
        aad.push(org.as_uuid().as_bytes());
        aad.push(table.as_bytes());
        aad.push(column.as_bytes());
        aad.push(row.as_bytes());
        aad
    }

    /// Any other context, as labelled parts (e.g. `["vault", name, version]`).
    pub fn parts(parts: &[&[u8]]) -> Self {
        let mut aad = Self {
            encoded: Vec::new(),
        };
        for part in parts {
            aad.push(part);
        }
        aad
    }

    // Length-prefixed, so ("ab","c") and ("a","bc") differ.
    fn push(&mut self, part: &[u8]) {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        self.encoded.extend_from_slice(&len.to_be_bytes());
        self.encoded.extend_from_slice(part);
    }

    fn full(&self, header: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(DOMAIN.len() + 5 + self.encoded.len());
        full.extend_from_slice(DOMAIN);
        full.extend_from_slice(&header[..5]);
        full.extend_from_slice(&self.encoded);
        full
    }
}

/// A data key of a given version, prepared for one provider: seals and opens values in
/// the versioned format.
pub struct EnvelopeKey {
    version: u32,
    prepared: Box<dyn PreparedKey>,
}

impl std::fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl EnvelopeKey {
    /// Prepares `key` (version `version`) with `provider`.
    pub fn new(
        provider: &dyn AeadProvider,
        key: &DataKey,
        version: u32,
    ) -> Result<Self, CryptoError> {
        Ok(Self {
            version,
            prepared: provider.prepare(key)?,
        })
    }

    /// The key version written into every ciphertext.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Encrypts `plaintext` for the place `aad`, with a fresh random 96-bit nonce.
    pub fn seal(&self, aad: &Aad, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = random_nonce();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        let full_aad = aad.full(&out);
        out.extend_from_slice(plaintext);
        let tag = self
            .prepared
            .seal_detached(&nonce, &full_aad, &mut out[HEADER_LEN..])?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a value sealed for `aad` with this key. A ciphertext of another version is
    /// [`CryptoError::UnknownKeyVersion`]: pick the key by [`key_version`] first.
    pub fn open(&self, aad: &Aad, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (header, body) = split(sealed)?;
        let version = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if version != self.version {
            return Err(CryptoError::UnknownKeyVersion(version));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[5..HEADER_LEN]);
        let full_aad = aad.full(header);
        let mut buf = body.to_vec();
        match self.prepared.open_in_place(&nonce, &full_aad, &mut buf) {
            Ok(()) => Ok(buf),
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut buf);
                Err(e)
            }
        }
    }
}

/// The data-key version a ciphertext names (not authenticated until opened).
pub fn key_version(sealed: &[u8]) -> Result<u32, CryptoError> {
    let (header, _) = split(sealed)?;
    Ok(u32::from_be_bytes([
        header[1], header[2], header[3], header[4],
    ]))
}

fn split(sealed: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
        return Err(CryptoError::Malformed);
    }
    Ok(sealed.split_at(HEADER_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::RustCryptoAead;
    use proptest::prelude::*;

    fn fixture() -> (EnvelopeKey, Aad, Vec<u8>) {
        let key = EnvelopeKey::new(
            &RustCryptoAead,
            &DataKey::from_slice(&[7u8; 32]).unwrap(),
            3,
        )
        .unwrap();
        let aad = Aad::field(OrgId::new(), "suppliers", "iban", "r1");
        let sealed = key.seal(&aad, b"secret payload").unwrap();
        (key, aad, sealed)
    }

    #[test]
    fn context_binding() {
        let (key, aad, sealed) = fixture();
        assert_eq!(key.open(&aad, &sealed).unwrap(), b"secret payload");
        let org = OrgId::new();
        for other in [
            Aad::field(org, "suppliers", "iban", "r1"),
            Aad::parts(&[b"field"]),
        ] {
            assert_eq!(key.open(&other, &sealed), Err(CryptoError::Unauthentic));
        }
        let wrong_key = EnvelopeKey::new(
            &RustCryptoAead,
            &DataKey::from_slice(&[8u8; 32]).unwrap(),
            3,
        )
        .unwrap();
        assert_eq!(wrong_key.open(&aad, &sealed), Err(CryptoError::Unauthentic));
    }

    #[test]
    fn nonces_are_fresh() {
        let (key, aad, sealed) = fixture();
        let again = key.seal(&aad, b"secret payload").unwrap();
        assert_ne!(sealed[5..HEADER_LEN], again[5..HEADER_LEN]);
    }

    #[test]
    fn version_is_authenticated() {
        let (key, aad, mut sealed) = fixture();
        sealed[4] ^= 1;
        assert_eq!(key_version(&sealed).unwrap(), 2);
        assert_eq!(
            key.open(&aad, &sealed),
            Err(CryptoError::UnknownKeyVersion(2))
        );
        // A key that claims version 2 still cannot open it: the version is in the AAD.
        let v2 = EnvelopeKey::new(
            &RustCryptoAead,
            &DataKey::from_slice(&[7u8; 32]).unwrap(),
            2,
        )
        .unwrap();
        assert_eq!(v2.open(&aad, &sealed), Err(CryptoError::Unauthentic));
    }

    #[test]
    fn truncated_and_foreign_inputs_are_malformed() {
        let (key, aad, sealed) = fixture();
        for n in 0..HEADER_LEN + TAG_LEN {
            assert_eq!(key.open(&aad, &sealed[..n]), Err(CryptoError::Malformed));
        }
        let mut other_format = sealed.clone();
        other_format[0] = 0x02;
        assert_eq!(key.open(&aad, &other_format), Err(CryptoError::Malformed));
    }

    proptest! {
        #[test]
        fn any_mutation_is_rejected_without_panic(pos in any::<prop::sample::Index>(), bit in 0u8..8, cut in any::<prop::sample::Index>()) {
            let (key, aad, sealed) = fixture();
            let mut flipped = sealed.clone();
            let i = pos.index(flipped.len());
            flipped[i] ^= 1 << bit;
            prop_assert!(key.open(&aad, &flipped).is_err());
            let truncated = &sealed[..cut.index(sealed.len())];
            prop_assert!(key.open(&aad, truncated).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let (key, aad, _) = fixture();
            prop_assert!(key.open(&aad, &bytes).is_err());
            let _ = key_version(&bytes);
        }
    }
}
