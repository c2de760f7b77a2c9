//! Is this callback really for us? The `SdkAppid` check and Tencent's token `Sign` check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ingress::callback::CallbackQuery;

/// Why a caller was not recognised; the text is the reason given to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("SdkAppid is missing")]
    MissingAppId,
    #[error("SdkAppid does not match this relay's app")]
    WrongAppId,
    #[error("Sign or RequestTime is missing (token authentication is on)")]
    MissingSign,
    #[error("RequestTime is not a Unix time in seconds")]
    BadRequestTime,
    #[error("RequestTime is too far from the relay's clock")]
    StaleRequestTime,
    #[error("Sign does not match")]
    WrongSign,
}

/// The checks a callback must pass before its body is read.
#[derive(Clone)]
pub struct Authenticator {
    sdk_app_id: String,
    token: Option<String>,
    max_skew: Duration,
}

impl Authenticator {
    pub fn new(sdk_app_id: String, token: Option<String>, max_skew: Duration) -> Self {
        Self {
            sdk_app_id,
            token,
            max_skew,
        }
    }

    /// Check 1: the `SdkAppid` query parameter equals, as text, the configured app ID.
    pub fn check_app_id(&self, query: &CallbackQuery) -> Result<(), AuthError> {
        match query.sdk_app_id.as_deref() {
            None => Err(AuthError::MissingAppId),
            Some(id) if id == self.sdk_app_id => Ok(()),
            Some(_) => Err(AuthError::WrongAppId),
        }
    }

    /// Check 2, when a token is configured: `Sign` = hex(SHA-256(token + RequestTime)) and
    /// `RequestTime` is within the allowed skew of `now`.
    pub fn check_sign(&self, query: &CallbackQuery, now: SystemTime) -> Result<(), AuthError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let (Some(sign), Some(time)) = (query.sign.as_deref(), query.request_time.as_deref()) else {
            return Err(AuthError::MissingSign);
        };
        let secs: u64 = time.parse().map_err(|_| AuthError::BadRequestTime)?;
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now_secs.abs_diff(secs) > self.max_skew.as_secs() {
            return Err(AuthError::StaleRequestTime);
        }
        let expected = sign_for(token, time);
        // Tencent sends lowercase hex; compare the bytes in constant time either way.
        if expected
            .as_bytes()
            .ct_eq(sign.to_ascii_lowercase().as_bytes())
            .into()
        {
            Ok(())
        } else {
            Err(AuthError::WrongSign)
        }
    }
}

/// `lowercase_hex(SHA-256(token + request_time))`, as Tencent computes it.
pub fn sign_for(token: &str, request_time: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(token.as_bytes());
    hasher.update(request_time.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SIGN: &str = "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn auth(token: Option<&str>) -> Authenticator {
        Authenticator::new(
            "1400000000".into(),
            token.map(Into::into),
            Duration::from_secs(60),
        )
    }

    fn query(sign: Option<&str>, time: Option<&str>) -> CallbackQuery {
        CallbackQuery {
            sdk_app_id: Some("1400000000".into()),
            sign: sign.map(Into::into),
            request_time: time.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn tencents_test_vector_gives_the_documented_sign() {
        assert_eq!(sign_for("xxxxyyyy", "1669872112"), VECTOR_SIGN);
        let q = query(Some(VECTOR_SIGN), Some("1669872112"));
        assert_eq!(auth(Some("xxxxyyyy")).check_sign(&q, at(1669872112 + 30)), Ok(()));
    }

    #[test]
    fn a_wrong_stale_or_missing_sign_is_refused() {
        let a = auth(Some("xxxxyyyy"));
        let now = at(1669872112);
        assert_eq!(
            a.check_sign(
                &query(Some(&VECTOR_SIGN.replace('1', "2")), Some("1669872112")),
                now
            ),
            Err(AuthError::WrongSign)
        );
        assert_eq!(
            a.check_sign(&query(Some(VECTOR_SIGN), Some("1669872112")), at(1669872112 + 61)),
            Err(AuthError::StaleRequestTime)
        );
        assert_eq!(
            a.check_sign(&query(Some(VECTOR_SIGN), Some("1669872112")), at(1669872112 - 61)),
            Err(AuthError::StaleRequestTime)
        );
        assert_eq!(
            a.check_sign(&query(None, Some("1669872112")), now),
            Err(AuthError::MissingSign)
        );
        assert_eq!(
            a.check_sign(&query(Some(VECTOR_SIGN), None), now),
            Err(AuthError::MissingSign)
        );
        assert_eq!(
            a.check_sign(&query(Some(VECTOR_SIGN), Some("soon")), now),
            Err(AuthError::BadRequestTime)
        );
        assert_eq!(
            a.check_sign(&query(Some("short"), Some("1669872112")), now),
            Err(AuthError::WrongSign)
        );
    }

    #[test]
    fn without_a_token_sign_is_not_required() {
        assert_eq!(auth(None).check_sign(&query(None, None), at(0)), Ok(()));
    }

    #[test]
    fn the_app_id_is_compared_as_text() {
        let a = auth(None);
        assert_eq!(a.check_app_id(&query(None, None)), Ok(()));
        let other = |id: Option<&str>| CallbackQuery {
            sdk_app_id: id.map(Into::into),
            ..Default::default()
        };
        assert_eq!(
            a.check_app_id(&other(Some("01400000000"))),
            Err(AuthError::WrongAppId)
        );
        assert_eq!(a.check_app_id(&other(Some(""))), Err(AuthError::WrongAppId));
        assert_eq!(a.check_app_id(&other(None)), Err(AuthError::MissingAppId));
    }
}
