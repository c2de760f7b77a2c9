//! UserSig, TLSSigAPIv2: signing the App admin's UserSig for REST calls, verifying one (for the
//! test emulator), and a cache that signs a fresh one at half its lifetime.
//!
//! The algorithm is `../shared/spec/tencent-im-rest.md` §2: HMAC-SHA256 with the app's secret
//! key over a content string of `TLS.*:value\n` lines, put in a JSON document with the other
//! `TLS.*` fields, zlib-compressed, base64-encoded with `+`→`*`, `/`→`-`, `=`→`_`. Official SDKs
//! differ in field order, JSON spacing and zlib level, so the verifier decodes the document and
//! checks its fields; it never compares bytes.

use std::fmt;
use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A UserSig inflates to a few hundred bytes; anything much larger is not one (and is not
/// inflated further, so a crafted one cannot make the verifier allocate without bound).
const MAX_DOCUMENT_BYTES: u64 = 4096;

/// `TIM_SECRET_KEY`: the app's key from the IM console. Masked in `Debug`.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        HmacSha256::new_from_slice(self.0.as_bytes()).expect("HMAC accepts any key length")
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(masked)")
    }
}

/// The signed fields of a UserSig: whose it is, for which app, when made and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub identifier: String,
    pub sdk_app_id: u64,
    /// `TLS.time`: when it was made, in seconds since the Unix epoch.
    pub time: u64,
    /// `TLS.expire`: how many seconds after `time` it stays valid.
    pub expire: u64,
}

impl Claims {
    /// The last second (Unix time) at which Tencent accepts it: valid while `now <= time + expire`.
    pub fn valid_until(&self) -> u64 {
        self.time.saturating_add(self.expire)
    }

    /// The string that `TLS.sig` is the HMAC of; the userbuf line only when there is one.
    fn content(&self, userbuf: Option<&str>) -> String {
        let mut content = format!(
            "TLS.identifier:{}\nTLS.sdkappid:{}\nTLS.time:{}\nTLS.expire:{}\n",
            self.identifier, self.sdk_app_id, self.time, self.expire
        );
        if let Some(userbuf) = userbuf {
            content.push_str(&format!("TLS.userbuf:{userbuf}\n"));
        }
        content
    }
}

/// The JSON document inside a UserSig. Numbers are JSON numbers; `TLS.userbuf` (never made
/// here) is accepted by the verifier because other SDKs may sign one.
#[derive(Debug, Serialize, Deserialize)]
struct Document {
    #[serde(rename = "TLS.ver")]
    ver: String,
    #[serde(rename = "TLS.identifier")]
    identifier: String,
    #[serde(rename = "TLS.sdkappid")]
    sdk_app_id: u64,
    #[serde(rename = "TLS.expire")]
    expire: u64,
    #[serde(rename = "TLS.time")]
    time: u64,
    #[serde(rename = "TLS.sig")]
    sig: String,
    #[serde(rename = "TLS.userbuf", default, skip_serializing_if = "Option::is_none")]
    userbuf: Option<String>,
}

/// `TLS.sig`: standard base64 (with `+/=`) of the HMAC-SHA256 of the content.
fn signature(key: &SecretKey, claims: &Claims) -> String {
    let mut mac = key.mac();
    mac.update(claims.content(None).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Makes the UserSig for `claims` with `key`.
pub fn sign(key: &SecretKey, claims: &Claims) -> String {
    let document = Document {
        ver: "2.0".into(),
        identifier: claims.identifier.clone(),
        sdk_app_id: claims.sdk_app_id,
        expire: claims.expire,
        time: claims.time,
        sig: signature(key, claims),
        userbuf: None,
    };
    let json = serde_json::to_vec(&document).expect("a document of strings and numbers serializes");
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(&json).expect("writing to a Vec cannot fail");
    let deflated = zlib.finish().expect("writing to a Vec cannot fail");
    to_url_alphabet(&STANDARD.encode(deflated))
}

fn to_url_alphabet(base64: &str) -> String {
    base64
        .chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

fn from_url_alphabet(usersig: &str) -> String {
    usersig
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect()
}

/// Why a UserSig was refused by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not base64 in the UserSig alphabet")]
    Base64,
    #[error("not a zlib stream of at most {MAX_DOCUMENT_BYTES} bytes")]
    Zlib,
    #[error("not a TLSSigAPIv2 document: {0}")]
    Document(String),
    #[error("TLS.ver is {0:?}, not \"2.0\"")]
    Version(String),
    #[error("TLS.sig does not match: another key, or a changed field")]
    Signature,
    #[error("expired at {valid_until} (now {now})")]
    Expired { valid_until: u64, now: u64 },
}

/// Decodes `usersig`, checks its HMAC with `key` (in constant time) and that it is still valid
/// at `now` (Unix seconds), and returns its claims. The caller checks that the identifier and
/// SDKAppID are the ones the request names.
pub fn verify(key: &SecretKey, usersig: &str, now: u64) -> Result<Claims, VerifyError> {
    let deflated = STANDARD
        .decode(from_url_alphabet(usersig))
        .map_err(|_| VerifyError::Base64)?;
    let mut json = Vec::new();
    ZlibDecoder::new(deflated.as_slice())
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|_| VerifyError::Zlib)?;
    if json.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(VerifyError::Zlib);
    }
    let document: Document =
        serde_json::from_slice(&json).map_err(|e| VerifyError::Document(e.to_string()))?;
    if document.ver != "2.0" {
        return Err(VerifyError::Version(document.ver));
    }
    let claims = Claims {
        identifier: document.identifier,
        sdk_app_id: document.sdk_app_id,
        time: document.time,
        expire: document.expire,
    };
    let sig = STANDARD
        .decode(&document.sig)
        .map_err(|_| VerifyError::Signature)?;
    let mut mac = key.mac();
    mac.update(claims.content(document.userbuf.as_deref()).as_bytes());
    mac.verify_slice(&sig).map_err(|_| VerifyError::Signature)?;
    if now > claims.valid_until() {
        return Err(VerifyError::Expired {
            valid_until: claims.valid_until(),
            now,
        });
    }
    Ok(claims)
}

/// The App admin's UserSig, signed again once half its lifetime has passed, so a request never
/// carries one near its expiry (clock skew between here and Tencent, a slow request) and a
/// refused one (70001) can be replaced at once with [`UserSigCache::invalidate`].
#[derive(Debug)]
pub struct UserSigCache {
    key: SecretKey,
    identifier: String,
    sdk_app_id: u64,
    lifetime: u64,
    current: Option<(u64, String)>,
}

impl UserSigCache {
    /// `lifetime` is `TLS.expire` in seconds; at least 2, so that half of it is a real time.
    pub fn new(key: SecretKey, identifier: impl Into<String>, sdk_app_id: u64, lifetime: u64) -> Self {
        Self {
            key,
            identifier: identifier.into(),
            sdk_app_id,
            lifetime: lifetime.max(2),
            current: None,
        }
    }

    /// The UserSig to send at `now` (Unix seconds, from the caller's clock): the cached one
    /// while less than half its lifetime has passed, else a fresh one. A clock that went back
    /// before the cached one was made also signs afresh, rather than send a UserSig from the
    /// future.
    pub fn get(&mut self, now: u64) -> &str {
        let fresh_enough = matches!(&self.current, Some((made, _))
            if now >= *made && now - made < self.lifetime / 2);
        if !fresh_enough {
            let claims = Claims {
                identifier: self.identifier.clone(),
                sdk_app_id: self.sdk_app_id,
                time: now,
                expire: self.lifetime,
            };
            self.current = Some((now, sign(&self.key, &claims)));
        }
        &self.current.as_ref().expect("set above").1
    }

    /// Forgets the cached UserSig, for when Tencent refused it (70001: expired).
    pub fn invalidate(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-secret-key-1234567890abcdef";

    fn vector() -> Claims {
        Claims {
            identifier: "user_42".into(),
            sdk_app_id: 20030819,
            time: 1718764800,
            expire: 604800,
        }
    }

    fn inflate(usersig: &str) -> serde_json::Value {
        let deflated = STANDARD.decode(from_url_alphabet(usersig)).unwrap();
        let mut json = Vec::new();
        ZlibDecoder::new(deflated.as_slice())
            .read_to_end(&mut json)
            .unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    /// Re-deflates a document, as another SDK (or an attacker) would.
    fn deflate(document: &serde_json::Value) -> String {
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::best());
        zlib.write_all(document.to_string().as_bytes()).unwrap();
        to_url_alphabet(&STANDARD.encode(zlib.finish().unwrap()))
    }

    #[test]
    fn the_signature_of_the_spec_test_vector_is_the_spec_one() {
        assert_eq!(
            signature(&SecretKey::new(KEY), &vector()),
            "8y4PAvIKGCmKvubBW+DGnAa/LQ9VpBWp4fEjtiQ/VHQ="
        );
    }

    #[test]
    fn the_content_string_ends_every_line_with_a_newline() {
        assert_eq!(
            vector().content(None),
            "TLS.identifier:user_42\nTLS.sdkappid:20030819\nTLS.time:1718764800\nTLS.expire:604800\n"
        );
    }

    #[test]
    fn the_usersig_of_the_test_vector_decodes_to_the_spec_document() {
        let usersig = sign(&SecretKey::new(KEY), &vector());
        assert!(!usersig.contains(['+', '/', '=']), "{usersig}");
        let document = inflate(&usersig);
        assert_eq!(
            document,
            serde_json::json!({
                "TLS.ver": "2.0",
                "TLS.identifier": "user_42",
                "TLS.sdkappid": 20030819,
                "TLS.expire": 604800,
                "TLS.time": 1718764800,
                "TLS.sig": "8y4PAvIKGCmKvubBW+DGnAa/LQ9VpBWp4fEjtiQ/VHQ=",
            })
        );
        assert!(document["TLS.sdkappid"].is_number() && document["TLS.time"].is_number());
    }

    #[test]
    fn a_usersig_made_here_verifies_until_its_last_second() {
        let key = SecretKey::new(KEY);
        let usersig = sign(&key, &vector());
        let last = 1718764800 + 604800;
        assert_eq!(verify(&key, &usersig, 1718764800), Ok(vector()));
        assert_eq!(verify(&key, &usersig, last), Ok(vector()));
        assert_eq!(
            verify(&key, &usersig, last + 1),
            Err(VerifyError::Expired {
                valid_until: last,
                now: last + 1
            })
        );
    }

    #[test]
    fn a_usersig_verifies_whatever_the_field_order_spacing_and_zlib_level() {
        let key = SecretKey::new(KEY);
        let reordered = serde_json::json!({
            "TLS.sig": "8y4PAvIKGCmKvubBW+DGnAa/LQ9VpBWp4fEjtiQ/VHQ=",
            "TLS.time": 1718764800, "TLS.expire": 604800, "TLS.sdkappid": 20030819,
            "TLS.identifier": "user_42", "TLS.ver": "2.0",
        });
        assert_eq!(verify(&key, &deflate(&reordered), 1718764800), Ok(vector()));
    }

    #[test]
    fn a_usersig_signed_with_another_key_is_refused() {
        let usersig = sign(&SecretKey::new("another-key"), &vector());
        assert_eq!(
            verify(&SecretKey::new(KEY), &usersig, 1718764800),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn a_usersig_with_any_field_changed_is_refused() {
        let key = SecretKey::new(KEY);
        let good = inflate(&sign(&key, &vector()));
        let changes = [
            ("TLS.identifier", serde_json::json!("administrator")),
            ("TLS.sdkappid", serde_json::json!(20030820)),
            ("TLS.time", serde_json::json!(1718764801)),
            ("TLS.expire", serde_json::json!(604800 * 100)),
            (
                "TLS.sig",
                serde_json::json!("9y4PAvIKGCmKvubBW+DGnAa/LQ9VpBWp4fEjtiQ/VHQ="),
            ),
        ];
        for (field, value) in changes {
            let mut tampered = good.clone();
            tampered[field] = value;
            assert_eq!(
                verify(&key, &deflate(&tampered), 1718764801),
                Err(VerifyError::Signature),
                "{field}"
            );
        }
        let mut with_userbuf = good.clone();
        with_userbuf["TLS.userbuf"] = serde_json::json!("YWJj");
        assert_eq!(
            verify(&key, &deflate(&with_userbuf), 1718764800),
            Err(VerifyError::Signature)
        );
    }

    #[test]
    fn a_usersig_with_a_userbuf_line_signed_in_verifies() {
        let key = SecretKey::new(KEY);
        let mut mac = key.mac();
        mac.update(vector().content(Some("YWJj")).as_bytes());
        let mut document = inflate(&sign(&key, &vector()));
        document["TLS.sig"] = serde_json::json!(STANDARD.encode(mac.finalize().into_bytes()));
        document["TLS.userbuf"] = serde_json::json!("YWJj");
        assert_eq!(verify(&key, &deflate(&document), 1718764800), Ok(vector()));
    }

    #[test]
    fn what_is_not_a_usersig_is_refused_with_its_reason() {
        let key = SecretKey::new(KEY);
        assert_eq!(verify(&key, "not base64!", 0), Err(VerifyError::Base64));
        assert_eq!(verify(&key, "aGVsbG8_", 0), Err(VerifyError::Zlib));
        let not_json = deflate(&serde_json::json!("a string"));
        assert!(matches!(
            verify(&key, &not_json, 0),
            Err(VerifyError::Document(_))
        ));
        let mut v1 = inflate(&sign(&key, &vector()));
        v1["TLS.ver"] = serde_json::json!("1.0");
        assert_eq!(
            verify(&key, &deflate(&v1), 0),
            Err(VerifyError::Version("1.0".into()))
        );
    }

    #[test]
    fn a_zlib_bomb_is_not_inflated_past_the_bound() {
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::best());
        zlib.write_all(&vec![b' '; 1 << 20]).unwrap();
        let bomb = to_url_alphabet(&STANDARD.encode(zlib.finish().unwrap()));
        assert_eq!(verify(&SecretKey::new(KEY), &bomb, 0), Err(VerifyError::Zlib));
    }

    #[test]
    fn the_secret_key_is_masked_in_debug() {
        let cache = UserSigCache::new(SecretKey::new(KEY), "admin", 1, 100);
        assert!(!format!("{cache:?}").contains(KEY));
    }

    #[test]
    fn the_cache_signs_afresh_at_half_the_lifetime_and_the_old_one_is_still_valid_then() {
        let key = SecretKey::new(KEY);
        let mut cache = UserSigCache::new(key.clone(), "admin", 1400000000, 86400);
        let start = 1_700_000_000;
        let first = cache.get(start).to_string();
        assert_eq!(verify(&key, &first, start).unwrap().time, start);
        for now in [start + 1, start + 43199] {
            assert_eq!(cache.get(now), first, "at {now}");
        }
        let half = start + 43200;
        let second = cache.get(half).to_string();
        assert_ne!(second, first);
        assert_eq!(verify(&key, &second, half).unwrap().time, half);
        assert!(
            verify(&key, &first, half).is_ok(),
            "renewed long before the old one expired"
        );
        assert_eq!(cache.get(half + 43199), second);
    }

    #[test]
    fn the_cache_signs_afresh_after_invalidate_or_when_the_clock_went_back() {
        let key = SecretKey::new(KEY);
        let mut cache = UserSigCache::new(key.clone(), "admin", 1, 86400);
        let first = cache.get(1000).to_string();
        cache.invalidate();
        let second = cache.get(1001).to_string();
        assert_ne!(first, second);
        let back = cache.get(999).to_string();
        assert_eq!(verify(&key, &back, 999).unwrap().time, 999);
    }
}
