//! Router-to-subgraph request credentials: the router signs every request; subgraphs verify.
//!
//! Subgraphs are reachable on the network, so without a credential anyone could call them directly and
//! skip every protection of the router (rate limits, introspection switch, depth and cost limits). Two
//! credentials open a subgraph:
//!
//! - **The router's signature** (ours): the header [`SIGNATURE_HEADER`],
//!   `shippy-router-signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where the MAC is computed with
//!   a key shared by the router and the subgraphs over
//!   `"shippy-router-v1\n" + t + "\n" + audience + "\n" + METHOD + "\n" + path_and_query + "\n" +
//!   hex(SHA-256(body))`. The audience is the subgraph's name, so a request signed for `vessel` is
//!   refused by `user`; the body hash means a signed request cannot carry another operation; the
//!   timestamp bounds replay to the accepted clock skew ([`DEFAULT_MAX_SKEW`] either way). A captured
//!   request can be replayed unchanged within that window: the signature proves where a request came
//!   from and that it was not altered, not that it is fresh to the second (the user's token still
//!   decides what the request may do).
//! - **A shared secret** (any Federation router): the header [`SHARED_SECRET_HEADER`] carrying a
//!   secret string, compared in constant time. Third-party routers send it through their header rules.
//!
//! A [`RequestVerifier`] accepts up to [`MAX_KEYS`] signing keys and [`MAX_KEYS`] shared secrets at
//! once, so either can be rotated without downtime: add the new one to every subgraph, switch the
//! router to it, remove the old one.
//!
//! Keys and secrets are strings of at least [`MIN_SECRET_LEN`] bytes used as they are (their bytes are
//! the HMAC key). [`generate_secret`] makes one (32 bytes from the operating system's RNG, hex) and
//! [`load_or_create_secret_file`] keeps one in a file readable only by its owner, which is how
//! `shippy up` gets its JWT secret and signing key on first start.

use std::{
    fmt,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use ring::{
    digest, hmac,
    rand::{SecureRandom, SystemRandom},
};

/// The header carrying the router's signature.
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("shippy-router-signature");

/// The header carrying a shared secret, for routers that cannot sign (set through their header rules).
pub const SHARED_SECRET_HEADER: HeaderName = HeaderName::from_static("shippy-subgraph-secret");

/// How far a signature's timestamp may be from the subgraph's clock, either way: the replay window of a
/// captured request, and the clock skew tolerated between router and subgraph hosts.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

/// Shortest accepted key or secret, in bytes: 256 bits of a random key, as hex, is 64 characters;
/// anything under 32 bytes could be brute-forced offline from one captured signature.
pub const MIN_SECRET_LEN: usize = 32;

/// Most signing keys (and, separately, shared secrets) a verifier accepts at once: the current one and
/// the next (or previous) one, for rotation.
pub const MAX_KEYS: usize = 2;

/// Domain separation: a MAC made for this purpose can never be mistaken for one made for another.
const CONTEXT: &str = "shippy-router-v1";

/// Most `v1=` entries one signature header may carry; each costs one HMAC per configured key.
const MAX_SIGNATURES: usize = 4;

/// Why a key or secret could not be set up (a start-up error for the operator).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key is too short to resist brute force.
    #[error(
        "{what} must be at least {MIN_SECRET_LEN} bytes long (generate one with `openssl rand -hex 32`)"
    )]
    TooShort {
        /// Which setting.
        what: &'static str,
    },
    /// More keys than a rotation needs.
    #[error("at most {MAX_KEYS} {what}s are accepted at once (the current one and the next)")]
    TooMany {
        /// Which setting.
        what: &'static str,
    },
    /// The verifier would refuse every request.
    #[error("no router signing key and no shared secret configured")]
    NoCredential,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Why a request was refused. Every variant means 401 for the client; the messages say what to fix
/// without revealing anything about the keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Neither header is present: someone called the subgraph directly.
    #[error(
        "this subgraph only answers the router: the request carries neither a router signature \
         (`shippy-router-signature`) nor a subgraph secret (`shippy-subgraph-secret`)"
    )]
    Missing,
    /// The signature header is not `t=<seconds>,v1=<hex>`.
    #[error(
        "this subgraph only answers the router: the `shippy-router-signature` header is malformed"
    )]
    Malformed,
    /// The timestamp is further from now than the accepted skew (a replay, or a clock out of sync).
    #[error(
        "this subgraph only answers the router: the router signature is {age}s from this subgraph's \
         clock, more than the {max}s accepted"
    )]
    Stale {
        /// Seconds between the signature's timestamp and now (either way).
        age: u64,
        /// The accepted skew in seconds.
        max: u64,
    },
    /// No configured key produces this signature for this subgraph, method, path and body.
    #[error("this subgraph only answers the router: the router signature is invalid")]
    BadSignature,
    /// The shared secret matches none configured.
    #[error("this subgraph only answers the router: the subgraph secret is invalid")]
    BadSecret,
}

/// How an accepted request proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Signed by a router holding a signing key.
    Signature,
    /// Carried a shared secret (a third-party router, or any holder of the secret).
    SharedSecret,
}

/// Seconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Bytes of lower- or upper-case hex; `None` if `text` is not hex of whole bytes.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

/// The string both sides MAC: every part a signature binds, one per line.
fn signed_message(
    timestamp: u64,
    audience: &str,
    method: &Method,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let body_hash = hex(digest::digest(&digest::SHA256, body).as_ref());
    format!(
        "{CONTEXT}\n{timestamp}\n{audience}\n{}\n{path_and_query}\n{body_hash}",
        method.as_str()
    )
}

/// The path and query a request is signed over (`/` when the URI has none, as HTTP/1.1 sends it).
pub fn path_and_query(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}

fn hmac_key(secret: &[u8], what: &'static str) -> Result<hmac::Key, KeyError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyError::TooShort { what });
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, secret))
}

/// Signs the router's requests to subgraphs with one key.
#[derive(Clone)]
pub struct RequestSigner {
    key: hmac::Key,
}

impl fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSigner").finish_non_exhaustive()
    }
}

impl RequestSigner {
    /// A signer with `key` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(key: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            key: hmac_key(key, "the router signing key")?,
        })
    }

    /// The [`SIGNATURE_HEADER`] value for a request to subgraph `audience`, made at `timestamp`.
    pub fn sign_at(
        &self,
        timestamp: u64,
        audience: &str,
        method: &Method,
        path_and_query: &str,
        body: &[u8],
    ) -> HeaderValue {
        let message = signed_message(timestamp, audience, method, path_and_query, body);
        let tag = hmac::sign(&self.key, message.as_bytes());
        let value = format!("t={timestamp},v1={}", hex(tag.as_ref()));
        // Only digits, hex and `t=,v1=`: always a valid header value.
        HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Like [`sign_at`](Self::sign_at), now.
    pub fn sign(
        &self,
        audience: &str,
        method: &Method,
        path_and_query: &str,
        body: &[u8],
    ) -> HeaderValue {
        self.sign_at(unix_now(), audience, method, path_and_query, body)
    }

    /// Signs a request to subgraph `audience` now, adding the header to `headers` (replacing any
    /// signature a client may have sent along).
    pub fn sign_headers(
        &self,
        headers: &mut HeaderMap,
        audience: &str,
        method: &Method,
        uri: &Uri,
        body: &[u8],
    ) {
        let value = self.sign(audience, method, path_and_query(uri), body);
        headers.insert(SIGNATURE_HEADER, value);
    }
}

/// A parsed signature header.
struct Signature {
    timestamp: u64,
    tags: Vec<Vec<u8>>,
}

impl Signature {
    /// Parses `t=<seconds>,v1=<hex>[,v1=<hex>...]`; unknown entries are ignored so a later version can
    /// add its own beside `v1` while subgraphs upgrade.
    fn parse(value: &HeaderValue) -> Result<Self, CredentialError> {
        let text = value.to_str().map_err(|_| CredentialError::Malformed)?;
        let mut timestamp = None;
        let mut tags = Vec::new();
        for entry in text.split(',') {
            let (name, value) = entry
                .trim()
                .split_once('=')
                .ok_or(CredentialError::Malformed)?;
            match name {
                "t" if timestamp.is_none() => {
                    timestamp = Some(value.parse().map_err(|_| CredentialError::Malformed)?);
                }
                "t" => return Err(CredentialError::Malformed),
                "v1" if tags.len() < MAX_SIGNATURES => {
                    tags.push(unhex(value).ok_or(CredentialError::Malformed)?);
                }
                "v1" => return Err(CredentialError::Malformed),
                _ => {}
            }
        }
        match timestamp {
            Some(timestamp) if !tags.is_empty() => Ok(Self { timestamp, tags }),
            _ => Err(CredentialError::Malformed),
        }
    }
}

/// Checks that a request to one subgraph came from a router: by signature, or by shared secret.
#[derive(Clone)]
pub struct RequestVerifier {
    audience: String,
    keys: Vec<hmac::Key>,
    /// A random key of this process, and the MAC under it of each accepted shared secret: a presented
    /// secret is accepted when `hmac::verify` (a constant-time comparison) matches one of the tags, so
    /// neither the time taken nor the secret's length tells an attacker how close a guess came.
    secret_check_key: hmac::Key,
    secret_tags: Vec<hmac::Tag>,
    max_skew: Duration,
}

impl fmt::Debug for RequestVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestVerifier")
            .field("audience", &self.audience)
            .field("keys", &self.keys.len())
            .field("shared_secrets", &self.secret_tags.len())
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

impl RequestVerifier {
    /// A verifier for subgraph `audience` (its name, as the router knows it) accepting signatures made
    /// with any of `keys` and any of `shared_secrets` (up to [`MAX_KEYS`] each, at least one in all),
    /// with timestamps within `max_skew` of now.
    pub fn new<K: AsRef<[u8]>, S: AsRef<[u8]>>(
        audience: impl Into<String>,
        keys: &[K],
        shared_secrets: &[S],
        max_skew: Duration,
    ) -> Result<Self, KeyError> {
        if keys.len() > MAX_KEYS {
            return Err(KeyError::TooMany {
                what: "router signing key",
            });
        }
        if shared_secrets.len() > MAX_KEYS {
            return Err(KeyError::TooMany {
                what: "subgraph secret",
            });
        }
        if keys.is_empty() && shared_secrets.is_empty() {
            return Err(KeyError::NoCredential);
        }
        let keys = keys
            .iter()
            .map(|key| hmac_key(key.as_ref(), "a router signing key"))
            .collect::<Result<_, _>>()?;
        let secret_check_key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| KeyError::Random)?;
        let secret_tags = shared_secrets
            .iter()
            .map(|secret| {
                let secret = secret.as_ref();
                if secret.len() < MIN_SECRET_LEN {
                    return Err(KeyError::TooShort {
                        what: "a subgraph secret",
                    });
                }
                Ok(hmac::sign(&secret_check_key, secret))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            audience: audience.into(),
            keys,
            secret_check_key,
            secret_tags,
            max_skew,
        })
    }

    /// The subgraph name signatures must be made for.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Checks a request at time `now` (Unix seconds). A valid credential of either kind is enough;
    /// when none is valid, the error is about the first one presented (the signature before the secret).
    pub fn verify_at(
        &self,
        now: u64,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Credential, CredentialError> {
        let mut first_error = None;
        if let Some(value) = headers.get(SIGNATURE_HEADER) {
            match self.check_signature(now, method, uri, value, body) {
                Ok(()) => return Ok(Credential::Signature),
                Err(err) => first_error = Some(err),
            }
        }
        if let Some(value) = headers.get(SHARED_SECRET_HEADER) {
            match self.check_secret(value) {
                Ok(()) => return Ok(Credential::SharedSecret),
                Err(err) => first_error = first_error.or(Some(err)),
            }
        }
        Err(first_error.unwrap_or(CredentialError::Missing))
    }

    /// Like [`verify_at`](Self::verify_at), now.
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Credential, CredentialError> {
        self.verify_at(unix_now(), method, uri, headers, body)
    }

    fn check_signature(
        &self,
        now: u64,
        method: &Method,
        uri: &Uri,
        value: &HeaderValue,
        body: &[u8],
    ) -> Result<(), CredentialError> {
        if self.keys.is_empty() {
            return Err(CredentialError::BadSignature);
        }
        let signature = Signature::parse(value)?;
        let age = now.abs_diff(signature.timestamp);
        if age > self.max_skew.as_secs() {
            return Err(CredentialError::Stale {
                age,
                max: self.max_skew.as_secs(),
            });
        }
        let message = signed_message(
            signature.timestamp,
            &self.audience,
            method,
            path_and_query(uri),
            body,
        );
        let valid = self.keys.iter().any(|key| {
            signature
                .tags
                .iter()
                .any(|tag| hmac::verify(key, message.as_bytes(), tag).is_ok())
        });
        if valid {
            Ok(())
        } else {
            Err(CredentialError::BadSignature)
        }
    }

    fn check_secret(&self, value: &HeaderValue) -> Result<(), CredentialError> {
        // Every configured secret is compared, so the time taken does not tell which one matched.
        let matches = self.secret_tags.iter().fold(false, |found, tag| {
            hmac::verify(&self.secret_check_key, value.as_bytes(), tag.as_ref()).is_ok() | found
        });
        if matches {
            Ok(())
        } else {
            Err(CredentialError::BadSecret)
        }
    }
}

/// A new random secret: 32 bytes from the operating system's RNG, as 64 hex characters (usable as a
/// JWT HS256 secret, a router signing key or a subgraph secret).
pub fn generate_secret() -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Random)?;
    Ok(hex(&bytes))
}

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// Reading, creating or writing the file failed.
    #[error("cannot use secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Others than the owner may read or write the file: the secret may be known, so it is not used.
    #[error(
        "secret file {path} is accessible to other users (mode {mode:o}); the secret may have leaked. \
         Delete the file to have a new secret generated, or `chmod 600` it if you are sure nobody read it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a regular file.
    #[error("secret file {path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file holds something shorter than a usable secret.
    #[error(
        "secret file {path} holds fewer than {MIN_SECRET_LEN} bytes; delete it to have a new secret generated"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
    },
    /// The random secret could not be generated.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A secret read from or written to a file by [`load_or_create_secret_file`].
pub struct SecretFile {
    /// The secret (surrounding whitespace trimmed).
    pub secret: String,
    /// Whether this call generated it (first start) rather than reading an existing file.
    pub created: bool,
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// The secret kept in `path`: read when the file exists (refused if others may access it, see
/// [`SecretFileError::Permissions`]), else generated with [`generate_secret`] and written to a new file
/// of mode 0600 (its directory is created if missing). A file is never loosened or rewritten.
pub fn load_or_create_secret_file(path: &Path) -> Result<SecretFile, SecretFileError> {
    let io_error = |source| SecretFileError::Io {
        path: path.to_owned(),
        source,
    };
    match read_secret_file(path) {
        Err(SecretFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => {
            return other.map(|secret| SecretFile {
                secret,
                created: false,
            });
        }
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_error)?;
    }
    let secret = generate_secret()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{secret}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io_error)?;
            Ok(SecretFile {
                secret,
                created: true,
            })
        }
        // Another process created it between our read and our create: use theirs.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            read_secret_file(path).map(|secret| SecretFile {
                secret,
                created: false,
            })
        }
        Err(err) => Err(io_error(err)),
    }
}

fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let io_error = |source| SecretFileError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io_error)?;
    if !metadata.is_file() {
        return Err(SecretFileError::NotAFile {
            path: path.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(io_error)?;
    let secret = text.trim();
    if secret.len() < MIN_SECRET_LEN {
        return Err(SecretFileError::TooShort {
            path: path.to_owned(),
        });
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef-router-key";
    const NEXT_KEY: &str = "fedcba9876543210fedcba9876543210-next-key";
    const SECRET: &str = "a-shared-secret-for-third-party-routers-1";
    const NEXT_SECRET: &str = "a-shared-secret-for-third-party-routers-2";
    const NOW: u64 = 1_800_000_000;
    const BODY: &[u8] = br#"{"query":"{ me { id } }"}"#;

    fn uri() -> Uri {
        Uri::from_static("http://user:4001/graphql")
    }

    fn verifier(keys: &[&str], secrets: &[&str]) -> RequestVerifier {
        RequestVerifier::new("user", keys, secrets, DEFAULT_MAX_SKEW).unwrap()
    }

    fn signed(key: &str, at: u64, audience: &str, body: &[u8]) -> HeaderMap {
        let value = RequestSigner::new(key.as_bytes()).unwrap().sign_at(
            at,
            audience,
            &Method::POST,
            "/graphql",
            body,
        );
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, value);
        headers
    }

    fn verify(
        verifier: &RequestVerifier,
        headers: &HeaderMap,
    ) -> Result<Credential, CredentialError> {
        verifier.verify_at(NOW, &Method::POST, &uri(), headers, BODY)
    }

    #[test]
    fn a_signed_request_is_accepted() {
        let headers = signed(KEY, NOW, "user", BODY);
        let value = headers[SIGNATURE_HEADER].to_str().unwrap();
        assert!(value.starts_with(&format!("t={NOW},v1=")), "{value}");
        assert_eq!(value.len(), format!("t={NOW},v1=").len() + 64);
        assert_eq!(
            verify(&verifier(&[KEY], &[]), &headers),
            Ok(Credential::Signature)
        );
    }

    #[test]
    fn signatures_bind_audience_method_path_body_and_key() {
        let verifier = verifier(&[KEY], &[]);
        let check = |headers: &HeaderMap, method: Method, uri: &str, body: &[u8]| {
            verifier.verify_at(NOW, &method, &Uri::try_from(uri).unwrap(), headers, body)
        };
        let good = signed(KEY, NOW, "user", BODY);
        assert_eq!(
            check(&good, Method::POST, "/graphql", BODY),
            Ok(Credential::Signature)
        );
        // Made for another subgraph.
        let vessel = signed(KEY, NOW, "vessel", BODY);
        assert_eq!(
            verify(&verifier, &vessel),
            Err(CredentialError::BadSignature)
        );
        // Another operation in the body.
        let tampered = br#"{"query":"{ users { email } }"}"#;
        assert_eq!(
            check(&good, Method::POST, "/graphql", tampered),
            Err(CredentialError::BadSignature)
        );
        // Another method or path.
        assert_eq!(
            check(&good, Method::GET, "/graphql", BODY),
            Err(CredentialError::BadSignature)
        );
        assert_eq!(
            check(&good, Method::POST, "/graphql?x=1", BODY),
            Err(CredentialError::BadSignature)
        );
        // Another key.
        let other = signed(NEXT_KEY, NOW, "user", BODY);
        assert_eq!(
            verify(&verifier, &other),
            Err(CredentialError::BadSignature)
        );
        // The timestamp is bound too: moving it invalidates the MAC.
        let value = good[SIGNATURE_HEADER].to_str().unwrap();
        let moved = value.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, moved.parse().unwrap());
        assert_eq!(
            verify(&verifier, &headers),
            Err(CredentialError::BadSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_skew_are_refused_either_way() {
        let verifier = verifier(&[KEY], &[]);
        let max = DEFAULT_MAX_SKEW.as_secs();
        for at in [NOW - max, NOW + max] {
            assert_eq!(
                verify(&verifier, &signed(KEY, at, "user", BODY)),
                Ok(Credential::Signature)
            );
        }
        assert_eq!(
            verify(&verifier, &signed(KEY, NOW - max - 1, "user", BODY)),
            Err(CredentialError::Stale { age: max + 1, max })
        );
        assert_eq!(
            verify(&verifier, &signed(KEY, NOW + max + 5, "user", BODY)),
            Err(CredentialError::Stale { age: max + 5, max })
        );
        let strict =
            RequestVerifier::new("user", &[KEY], &[] as &[&str], Duration::from_secs(5)).unwrap();
        assert_eq!(
            verify(&strict, &signed(KEY, NOW - 6, "user", BODY)),
            Err(CredentialError::Stale { age: 6, max: 5 })
        );
    }

    #[test]
    fn two_keys_are_accepted_for_rotation() {
        let verifier = verifier(&[KEY, NEXT_KEY], &[]);
        for key in [KEY, NEXT_KEY] {
            assert_eq!(
                verify(&verifier, &signed(key, NOW, "user", BODY)),
                Ok(Credential::Signature)
            );
        }
        let third = "a-third-key-that-is-long-enough-to-be-used";
        assert_eq!(
            verify(&verifier, &signed(third, NOW, "user", BODY)),
            Err(CredentialError::BadSignature)
        );
        // A header with several signatures passes when one of them does.
        let good = signed(KEY, NOW, "user", BODY)[SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let v1 = good.split_once(",v1=").unwrap().1;
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            format!("t={NOW},v1={},v1={v1}", "00".repeat(32))
                .parse()
                .unwrap(),
        );
        assert_eq!(verify(&verifier, &headers), Ok(Credential::Signature));
    }

    #[test]
    fn malformed_signature_headers_are_refused() {
        let verifier = verifier(&[KEY], &[]);
        let good = signed(KEY, NOW, "user", BODY)[SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let v1 = good.split_once(",v1=").unwrap().1.to_owned();
        for value in [
            String::new(),
            "garbage".into(),
            format!("v1={v1}"),
            format!("t={NOW}"),
            format!("t=soon,v1={v1}"),
            format!("t=-5,v1={v1}"),
            format!("t={NOW},t={NOW},v1={v1}"),
            format!("t={NOW},v1=xyz"),
            format!("t={NOW},v1=abc"),
            format!("t={NOW}{}", format!(",v1={v1}").repeat(MAX_SIGNATURES + 1)),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(SIGNATURE_HEADER, value.parse().unwrap());
            assert_eq!(
                verify(&verifier, &headers),
                Err(CredentialError::Malformed),
                "{value}"
            );
        }
        // Unknown entries are ignored (a later version may add its own).
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, format!("{good},v2=abcd").parse().unwrap());
        assert_eq!(verify(&verifier, &headers), Ok(Credential::Signature));
        // Non-visible bytes in the header value.
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_bytes(b"t=\xff").unwrap(),
        );
        assert_eq!(verify(&verifier, &headers), Err(CredentialError::Malformed));
    }

    #[test]
    fn unsigned_requests_are_refused() {
        let verifier = verifier(&[KEY], &[SECRET]);
        assert_eq!(
            verify(&verifier, &HeaderMap::new()),
            Err(CredentialError::Missing)
        );
        let message = CredentialError::Missing.to_string();
        assert!(message.contains("only answers the router"), "{message}");
    }

    #[test]
    fn each_of_two_shared_secrets_is_accepted() {
        let verifier = verifier(&[], &[SECRET, NEXT_SECRET]);
        for secret in [SECRET, NEXT_SECRET] {
            let mut headers = HeaderMap::new();
            headers.insert(SHARED_SECRET_HEADER, secret.parse().unwrap());
            assert_eq!(verify(&verifier, &headers), Ok(Credential::SharedSecret));
        }
        for wrong in [
            "",
            "a-shared-secret",
            "a-shared-secret-for-third-party-routers-3",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(SHARED_SECRET_HEADER, wrong.parse().unwrap());
            assert_eq!(
                verify(&verifier, &headers),
                Err(CredentialError::BadSecret),
                "{wrong}"
            );
        }
        // Without signing keys, a signature (even one made with a key) is not a credential.
        assert_eq!(
            verify(&verifier, &signed(KEY, NOW, "user", BODY)),
            Err(CredentialError::BadSignature)
        );
    }

    #[test]
    fn either_credential_is_enough_and_the_first_error_is_reported() {
        let verifier = verifier(&[KEY], &[SECRET]);
        // A stale signature beside a good secret: accepted by the secret.
        let mut headers = signed(KEY, NOW - 3600, "user", BODY);
        headers.insert(SHARED_SECRET_HEADER, SECRET.parse().unwrap());
        assert_eq!(verify(&verifier, &headers), Ok(Credential::SharedSecret));
        // Both wrong: the signature's error.
        headers.insert(SHARED_SECRET_HEADER, NEXT_SECRET.parse().unwrap());
        assert!(matches!(
            verify(&verifier, &headers),
            Err(CredentialError::Stale { .. })
        ));
        // Only a wrong secret: its error.
        headers.remove(SIGNATURE_HEADER);
        assert_eq!(verify(&verifier, &headers), Err(CredentialError::BadSecret));
    }

    #[test]
    fn sign_headers_replaces_a_forwarded_signature() {
        let signer = RequestSigner::new(KEY.as_bytes()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, "t=1,v1=00".parse().unwrap());
        signer.sign_headers(&mut headers, "user", &Method::POST, &uri(), BODY);
        assert_eq!(headers.get_all(SIGNATURE_HEADER).iter().count(), 1);
        assert_eq!(
            verifier(&[KEY], &[]).verify(&Method::POST, &uri(), &headers, BODY),
            Ok(Credential::Signature)
        );
        // An origin-form URI without a path is signed and checked as `/`.
        assert_eq!(path_and_query(&Uri::from_static("http://user:4001")), "/");
    }

    #[test]
    fn weak_missing_or_too_many_keys_are_start_up_errors() {
        let none: &[&str] = &[];
        assert!(matches!(
            RequestSigner::new(b"short"),
            Err(KeyError::TooShort { .. })
        ));
        assert!(matches!(
            RequestVerifier::new("user", none, none, DEFAULT_MAX_SKEW),
            Err(KeyError::NoCredential)
        ));
        assert!(matches!(
            RequestVerifier::new("user", &["short"], none, DEFAULT_MAX_SKEW),
            Err(KeyError::TooShort { .. })
        ));
        assert!(matches!(
            RequestVerifier::new("user", none, &["short"], DEFAULT_MAX_SKEW),
            Err(KeyError::TooShort { .. })
        ));
        assert!(matches!(
            RequestVerifier::new("user", &[KEY, NEXT_KEY, KEY], none, DEFAULT_MAX_SKEW),
            Err(KeyError::TooMany { .. })
        ));
        assert!(matches!(
            RequestVerifier::new(
                "user",
                none,
                &[SECRET, NEXT_SECRET, SECRET],
                DEFAULT_MAX_SKEW
            ),
            Err(KeyError::TooMany { .. })
        ));
        let message = KeyError::TooShort { what: "the key" }.to_string();
        assert!(message.contains("openssl rand -hex 32"), "{message}");
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let verifier = verifier(&[KEY], &[SECRET]);
        let text = format!(
            "{verifier:?} {:?}",
            RequestSigner::new(KEY.as_bytes()).unwrap()
        );
        assert!(
            !text.contains("0123456789") && !text.contains("shared-secret"),
            "{text}"
        );
        assert!(text.contains("audience: \"user\""), "{text}");
        let file = SecretFile {
            secret: SECRET.into(),
            created: true,
        };
        assert!(!format!("{file:?}").contains("shared-secret"));
    }

    #[test]
    fn generated_secrets_are_random_hex_of_32_bytes() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(unhex(&a).map(|bytes| hex(&bytes)), Some(a.clone()));
        assert!(RequestSigner::new(a.as_bytes()).is_ok());
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_are_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/jwt-secret");
        let first = load_or_create_secret_file(&path).unwrap();
        assert!(first.created);
        assert_eq!(first.secret.len(), 64);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", first.secret)
        );

        let again = load_or_create_secret_file(&path).unwrap();
        assert!(!again.created);
        assert_eq!(again.secret, first.secret);

        // Readable by the group: refused, and left as it is.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_or_create_secret_file(&path).unwrap_err();
        assert!(
            matches!(err, SecretFileError::Permissions { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert_eq!(mode(&path), 0o640);

        // An operator's own secret (with a newline from an editor) is used as written.
        let own = dir.path().join("own");
        std::fs::write(&own, "  my-own-secret-that-is-long-enough-to-use \n").unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o400)).unwrap();
        let loaded = load_or_create_secret_file(&own).unwrap();
        assert_eq!(loaded.secret, "my-own-secret-that-is-long-enough-to-use");
        assert!(!loaded.created);

        // Too short, or a directory: refused.
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            load_or_create_secret_file(&short),
            Err(SecretFileError::TooShort { .. })
        ));
        assert!(matches!(
            load_or_create_secret_file(dir.path()),
            Err(SecretFileError::NotAFile { .. })
        ));
    }

    #[test]
    fn a_secret_file_that_cannot_be_created_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // Its "directory" is a regular file: creating it fails, even for root.
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, "x").unwrap();
        let err = load_or_create_secret_file(&blocker.join("secret")).unwrap_err();
        assert!(matches!(err, SecretFileError::Io { .. }), "{err}");
        assert!(err.to_string().contains("blocker"), "{err}");
    }
}
