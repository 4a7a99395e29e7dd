//! The Forward protocol v1 handshake: the server sends HELO with a nonce (and a salt when users
//! must log in), the client answers PING with digests of the shared key (and its password),
//! the server answers PONG and either serves the connection or closes it.
//!
//! Nonce and salt are sent as msgpack bin, as Fluentd does: clients that decode str as UTF-8
//! (Node's fluent-logger) would otherwise hash different bytes than the ones sent, and Node
//! only sends a password digest when the salt arrives as bin.

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use ring::digest::{Context, SHA512};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::socket::Socket;
use crate::config::{ConfigError, Section};
use crate::msgpack::write::{write_array_len, write_bin, write_bool, write_map_len, write_str};
use crate::msgpack::{Reader, Scanner, ScannerLimits, ValueRef};

/// Fluent Bit's default `Self_Hostname`.
const DEFAULT_HOSTNAME: &str = "localhost";
/// A PING is six short strings; anything longer is not one.
const MAX_PING: usize = 64 * 1024;
const READ_SIZE: usize = 1024;
const RANDOM_LEN: usize = 16;

/// Who may connect: the shared key, the name the server gives in PONG, and the users.
pub struct Auth {
    shared_key: Vec<u8>,
    self_hostname: String,
    users: Vec<User>,
}

struct User {
    name: Vec<u8>,
    password: Vec<u8>,
}

/// Never shows the key or the passwords.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("self_hostname", &self.self_hostname)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// The handshake is on when `Shared_Key` is set, `Empty_Shared_Key` is on, or users are
    /// declared; users need a key (possibly empty), as in Fluent Bit.
    pub fn from_section(section: &Section) -> Result<Option<Auth>, ConfigError> {
        let empty_key = section.bool("empty_shared_key", false)?;
        let shared_key = match section.str("shared_key") {
            Some(k) => Some(k.as_bytes().to_vec()),
            None if empty_key => Some(Vec::new()),
            None => None,
        };
        let mut users = Vec::new();
        for e in section.all("security.users") {
            // Errors name the key, never the value: it holds a password.
            let mut parts = e.value.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(name), Some(password), None) => users.push(User {
                    name: name.as_bytes().to_vec(),
                    password: password.as_bytes().to_vec(),
                }),
                _ => {
                    return Err(ConfigError::new(
                        &e.loc,
                        format!("{}: expected 'USER PASSWORD'", e.key),
                    ));
                }
            }
        }
        let Some(shared_key) = shared_key else {
            return match section.all("security.users").next() {
                Some(e) => Err(ConfigError::new(
                    &e.loc,
                    format!(
                        "{}: users need a Shared_Key (or Empty_Shared_Key On) to log in with",
                        e.key
                    ),
                )),
                None => Ok(None),
            };
        };
        Ok(Some(Auth {
            shared_key,
            self_hostname: section
                .str("self_hostname")
                .unwrap_or(DEFAULT_HOSTNAME)
                .to_string(),
            users,
        }))
    }
}

impl Auth {
    /// What `--dry-run` shows: no secrets.
    pub fn summary(&self) -> String {
        format!(
            "Self_Hostname {}, {} users",
            self.self_hostname,
            self.users.len()
        )
    }
}

/// Why a client was turned away; the text is the PONG's reason, as Fluentd words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refusal {
    #[error("invalid ping message")]
    InvalidPing,
    #[error("shared_key mismatch")]
    KeyMismatch,
    #[error("username/password mismatch")]
    UserMismatch,
}

/// Why a handshake did not let the connection through.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("no PING within Frame_Timeout")]
    TimedOut,
    #[error("the router is stopping")]
    Stopped,
    #[error("connection lost during the handshake: {0}")]
    Io(#[from] io::Error),
}

/// Runs the server side of the handshake. Returns what the client sent after its PING (the
/// first bytes of its data), or why it is to be closed; a refused client has been sent its
/// PONG.
pub(super) async fn run<S: Socket>(
    sock: &mut S,
    auth: &Auth,
    timeout: Option<Duration>,
    stop: &CancellationToken,
) -> Result<BytesMut, HandshakeError> {
    let rng = SystemRandom::new();
    let mut nonce = [0u8; RANDOM_LEN];
    let mut salt = [0u8; RANDOM_LEN];
    rng.fill(&mut nonce)
        .and_then(|()| rng.fill(&mut salt))
        .map_err(|_| io::Error::other("no system randomness for the handshake nonce"))?;
    let auth_salt: &[u8] = if auth.users.is_empty() { &[] } else { &salt };
    sock.write_all(&helo(&nonce, auth_salt)).await?;
    sock.flush().await?;

    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut buf = BytesMut::new();
    let mut scanner = Scanner::new(ScannerLimits {
        max_bytes: MAX_PING,
        max_depth: 4,
    });
    let len = loop {
        match scanner.advance(&buf) {
            Ok(Some(len)) => break len,
            Ok(None) => {}
            Err(_) => return refuse(sock, Refusal::InvalidPing).await,
        }
        tokio::select! {
            r = sock.readable() => r?,
            () = stop.cancelled() => return Err(HandshakeError::Stopped),
            () = sleep_until(deadline) => return Err(HandshakeError::TimedOut),
        }
        buf.reserve(READ_SIZE);
        match sock.try_read_buf(&mut buf) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    };
    let ping = buf.split_to(len);
    match check_ping(&ping, auth, &nonce, auth_salt) {
        Ok(client_salt) => {
            sock.write_all(&pong_ok(auth, client_salt, &nonce)).await?;
            sock.flush().await?;
            Ok(buf)
        }
        Err(r) => refuse(sock, r).await,
    }
}

async fn refuse<S: Socket>(sock: &mut S, why: Refusal) -> Result<BytesMut, HandshakeError> {
    // The client is told why; if it has gone already, the refusal stands all the same.
    let mut pong = Vec::new();
    write_array_len(&mut pong, 5);
    write_str(&mut pong, b"PONG");
    write_bool(&mut pong, false);
    write_str(&mut pong, why.to_string().as_bytes());
    write_str(&mut pong, b"");
    write_str(&mut pong, b"");
    if sock.write_all(&pong).await.is_ok() {
        let _ = sock.flush().await;
    }
    Err(HandshakeError::Refused(why))
}

/// `["HELO", {"nonce": bin, "auth": bin (empty: no users), "keepalive": true}]`
fn helo(nonce: &[u8], auth_salt: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_array_len(&mut out, 2);
    write_str(&mut out, b"HELO");
    write_map_len(&mut out, 3);
    write_str(&mut out, b"nonce");
    write_bin(&mut out, nonce);
    write_str(&mut out, b"auth");
    write_bin(&mut out, auth_salt);
    write_str(&mut out, b"keepalive");
    write_bool(&mut out, true);
    out
}

/// `["PONG", true, "", self_hostname, hex(sha512(salt ‖ self_hostname ‖ nonce ‖ key))]`
fn pong_ok(auth: &Auth, client_salt: &[u8], nonce: &[u8]) -> Vec<u8> {
    let digest = hex_sha512(&[
        client_salt,
        auth.self_hostname.as_bytes(),
        nonce,
        &auth.shared_key,
    ]);
    let mut out = Vec::with_capacity(160 + auth.self_hostname.len());
    write_array_len(&mut out, 5);
    write_str(&mut out, b"PONG");
    write_bool(&mut out, true);
    write_str(&mut out, b"");
    write_str(&mut out, auth.self_hostname.as_bytes());
    write_str(&mut out, &digest);
    out
}

/// Checks `["PING", hostname, salt, hex digest, username, password digest]` and returns the
/// client's salt, which the PONG's digest is made with.
fn check_ping<'a>(
    ping: &'a [u8],
    auth: &Auth,
    nonce: &[u8],
    auth_salt: &[u8],
) -> Result<&'a [u8], Refusal> {
    let fields = ping_fields(ping).ok_or(Refusal::InvalidPing)?;
    let [hostname, salt, digest, username, password] = fields;
    let expected = hex_sha512(&[salt, hostname, nonce, &auth.shared_key]);
    if !same_bytes(digest, &expected) {
        return Err(Refusal::KeyMismatch);
    }
    if !auth.users.is_empty() {
        // Every user is checked, so the time taken does not tell which names exist.
        let mut ok = false;
        for user in &auth.users {
            let expected = hex_sha512(&[auth_salt, &user.name, &user.password]);
            ok |= same_bytes(&user.name, username) & same_bytes(password, &expected);
        }
        if !ok {
            return Err(Refusal::UserMismatch);
        }
    }
    Ok(salt)
}

/// The five fields after "PING", each a str or bin.
fn ping_fields(ping: &[u8]) -> Option<[&[u8]; 5]> {
    let mut r = Reader::new(ping);
    let ValueRef::Array(6, body) = r.value().ok()? else {
        return None;
    };
    let mut r = Reader::new(body);
    if r.str_or_bin().ok()? != b"PING" {
        return None;
    }
    let mut fields: [&[u8]; 5] = [&[]; 5];
    for f in &mut fields {
        *f = r.str_or_bin().ok()?;
    }
    Some(fields)
}

/// Lower-case hex of the SHA-512 of the parts, concatenated.
fn hex_sha512(parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = Context::new(&SHA512);
    for p in parts {
        ctx.update(p);
    }
    let mut out = Vec::with_capacity(128);
    for b in ctx.finish().as_ref() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Equal, in time that depends on the lengths only (digests must not leak a matching prefix).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The PING check on its own, for the fuzz target: any bytes, never a panic.
#[doc(hidden)]
pub fn fuzz_check_ping(ping: &[u8]) {
    let auth = Auth {
        shared_key: b"secret".to_vec(),
        self_hostname: DEFAULT_HOSTNAME.to_string(),
        users: vec![User {
            name: b"alice".to_vec(),
            password: b"pass".to_vec(),
        }],
    };
    let _ = check_ping(ping, &auth, &[0; RANDOM_LEN], &[1; RANDOM_LEN]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: &[u8] = b"0123456789abcdef0123456789abcdef";
    const CLIENT_DIGEST: &[u8] = b"3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df";
    const SERVER_DIGEST: &[u8] = b"3389a63bef56054281d75fb7b05965b0d1b1ea9eba25b4594ed8e06a02e725af1fbf401cdbe697423c388ac1948566570a6f592284a536370ca36a5ccf88cbbd";
    const ALICE_DIGEST: &[u8] = b"9f48c52936da01248e1c3e2ffab158a8a3cc201cc13aeca8b9d689a6ea13e98f0d661aa675e93490805b0d8834cccc5df9028c9a3a2797e71086eedb85069223";

    fn nonce() -> Vec<u8> {
        (0u8..16).collect()
    }
    fn auth_salt() -> Vec<u8> {
        (0x10u8..0x20).collect()
    }

    fn auth(users: bool) -> Auth {
        Auth {
            shared_key: b"secret".to_vec(),
            self_hostname: "server.example".to_string(),
            users: if users {
                vec![User {
                    name: b"alice".to_vec(),
                    password: b"pass".to_vec(),
                }]
            } else {
                Vec::new()
            },
        }
    }

    fn ping(fields: [&[u8]; 5], bin: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_array_len(&mut out, 6);
        write_str(&mut out, b"PING");
        for f in fields {
            if bin {
                write_bin(&mut out, f);
            } else {
                write_str(&mut out, f);
            }
        }
        out
    }

    #[test]
    fn digests_match_the_reference_vectors() {
        assert_eq!(
            hex_sha512(&[SALT, b"client.example", &nonce(), b"secret"]),
            CLIENT_DIGEST
        );
        assert_eq!(hex_sha512(&[&auth_salt(), b"alice", b"pass"]), ALICE_DIGEST);
    }

    #[test]
    fn accepts_the_right_key_as_str_or_bin_and_answers_with_its_own_digest() {
        for bin in [false, true] {
            let p = ping([b"client.example", SALT, CLIENT_DIGEST, b"", b""], bin);
            let salt = check_ping(&p, &auth(false), &nonce(), &[]).unwrap();
            assert_eq!(salt, SALT);
            let pong = pong_ok(&auth(false), salt, &nonce());
            let mut r = Reader::new(&pong);
            let ValueRef::Array(5, body) = r.value().unwrap() else {
                panic!("PONG is not a 5-array");
            };
            let mut r = Reader::new(body);
            assert_eq!(r.str_or_bin().unwrap(), b"PONG");
            assert_eq!(r.value().unwrap(), ValueRef::Bool(true));
            assert_eq!(r.str_or_bin().unwrap(), b"");
            assert_eq!(r.str_or_bin().unwrap(), b"server.example");
            assert_eq!(r.str_or_bin().unwrap(), SERVER_DIGEST);
        }
    }

    #[test]
    fn refuses_a_wrong_key_a_wrong_user_and_what_is_not_a_ping() {
        let wrong_key = ping([b"client.example", SALT, &[b'0'; 128], b"", b""], false);
        assert_eq!(
            check_ping(&wrong_key, &auth(false), &nonce(), &[]),
            Err(Refusal::KeyMismatch)
        );
        let user = |name: &[u8], digest: &[u8]| {
            let p = ping(
                [b"client.example", SALT, CLIENT_DIGEST, name, digest],
                false,
            );
            check_ping(&p, &auth(true), &nonce(), &auth_salt()).map(|_| ())
        };
        assert_eq!(user(b"alice", ALICE_DIGEST), Ok(()));
        assert_eq!(user(b"alice", CLIENT_DIGEST), Err(Refusal::UserMismatch));
        assert_eq!(user(b"bob", ALICE_DIGEST), Err(Refusal::UserMismatch));
        assert_eq!(user(b"", b""), Err(Refusal::UserMismatch));

        // A data frame where the PING should be, a short PING, a PING with a number.
        let mut data = Vec::new();
        write_array_len(&mut data, 3);
        write_str(&mut data, b"app");
        crate::msgpack::write::write_uint(&mut data, 1);
        write_map_len(&mut data, 0);
        let mut short = Vec::new();
        write_array_len(&mut short, 2);
        write_str(&mut short, b"PING");
        write_str(&mut short, b"host");
        let mut number = ping([b"h", SALT, CLIENT_DIGEST, b"", b""], false);
        let last = number.len() - 1;
        number[last] = 0x01; // the last fixstr "" becomes the integer 1
        for p in [data, short, number, vec![0xc1]] {
            assert_eq!(
                check_ping(&p, &auth(false), &nonce(), &[]),
                Err(Refusal::InvalidPing)
            );
        }
    }

    #[test]
    fn helo_sends_the_nonce_and_salt_as_bin() {
        let h = helo(&nonce(), &auth_salt());
        let mut r = Reader::new(&h);
        let ValueRef::Array(2, body) = r.value().unwrap() else {
            panic!("HELO is not a 2-array");
        };
        let mut r = Reader::new(body);
        assert_eq!(r.str_or_bin().unwrap(), b"HELO");
        let ValueRef::Map(3, opts) = r.value().unwrap() else {
            panic!("HELO options are not a 3-map");
        };
        let mut r = Reader::new(opts);
        assert_eq!(r.str_or_bin().unwrap(), b"nonce");
        assert_eq!(r.value().unwrap(), ValueRef::Bin(&nonce()));
        assert_eq!(r.str_or_bin().unwrap(), b"auth");
        assert_eq!(r.value().unwrap(), ValueRef::Bin(&auth_salt()));
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let shown = format!("{:?}", auth(true));
        assert!(
            !shown.contains("secret") && !shown.contains("pass"),
            "{shown}"
        );
    }
}
