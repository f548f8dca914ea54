//! A value that must never appear in logs or `Debug` output: private keys, API keys,
//! connection URLs carrying passwords, bearer tokens.

use std::{fmt, str::FromStr};

/// Holds a secret. `Debug` and `Display` print `<redacted>`; the value is reached only through
/// [`Secret::expose`], so every use of it is visible in the code.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value. Do not log it.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Applies `f` to the inner value, keeping the result secret.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Secret<U> {
        Secret(f(self.0))
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

/// Parsing keeps the parser's error, which must not echo the input (the standard parsers of
/// `String` and `url::Url` do not).
impl<T: FromStr> FromStr for Secret<T> {
    type Err = T::Err;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("0xdeadbeef-private".to_owned());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s:#?}"), "Secret(<redacted>)");
        assert_eq!(s.to_string(), "<redacted>");
        assert_eq!(s.expose(), "0xdeadbeef-private");
    }

    #[test]
    fn redacts_inside_containers() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            key: Secret<String>,
            maybe: Option<Secret<String>>,
        }
        let h = Holder {
            key: "k1-top-secret".parse().unwrap(),
            maybe: Some("k2-hidden".to_owned().into()),
        };
        let out = format!("{h:?} {h:#?}");
        assert!(!out.contains("top-secret") && !out.contains("hidden"), "{out}");
    }

    #[test]
    fn map_keeps_secrecy() {
        let s = Secret::new(" padded ".to_owned()).map(|v| v.trim().to_owned());
        assert_eq!(s.expose(), "padded");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }
}
