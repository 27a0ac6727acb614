//! TLS for fleet mode's connections: libpq's `sslmode` and `sslrootcert`,
//! with rustls (the `ring` provider) through `tokio-postgres-rustls`.
//!
//! - `sslmode` comes from the URL, else from `PGSSLMODE`, else the default:
//!   `verify-full` for a host off the loopback, `prefer` on it. Unix sockets
//!   never use TLS (nor does libpq over them). `PGSSLMODE` may only make a
//!   connection stricter than the default: a weaker one is refused, since the
//!   environment belongs to the application's account and the URL to the
//!   policy.
//! - `sslrootcert` (a PEM file of CA certificates, or `system`: the public
//!   web PKI's roots built into prodguard, webpki-roots) comes from the URL
//!   only, else is `system`. Nothing in the environment chooses the trust
//!   anchors: `PGSSLROOTCERT` set without one in the URL refuses, and
//!   `SSL_CERT_FILE`, `SSL_CERT_DIR` and `~/.postgresql/root.crt` are not
//!   read. Whoever sets the environment of a guarded program (its account)
//!   could otherwise make a certificate of their own trusted.
//! - The public roots authenticate a name, never a CA alone: with them,
//!   `verify-ca` (and `prefer`/`require` naming `sslrootcert=system`) would
//!   accept anyone's certificate, so the URL is refused (as libpq 16 does).
//!
//! `postgres::Config` knows neither `verify-ca`, `verify-full` nor
//! `sslrootcert`, so [`split_params`] takes them out of the URL before it
//! parses it.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use postgres::Config;
use postgres::Socket;
use postgres::config::{Host, SslMode as ClientSslMode};
use postgres::tls::{MakeTlsConnect, TlsConnect};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, weakest first (the order [`Plan`] compares them in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, the certificate unchecked (unless a
    /// root certificate is named, as libpq).
    Prefer,
    /// TLS, the certificate unchecked (unless a root certificate is named:
    /// then as `verify-ca`, as libpq).
    Require,
    /// TLS, the certificate must chain to a trusted CA; its names are not
    /// checked.
    VerifyCa,
    /// TLS, the certificate must chain to a trusted CA and name the host.
    VerifyFull,
}

impl SslMode {
    /// The mode `text` names, as libpq spells it.
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The accepted `sslmode` values, for messages.
const MODES: &str = "disable, prefer, require, verify-ca or verify-full";

/// Why a TLS connection to a PostgreSQL server was refused. It reaches the
/// caller inside [`PgError::Connect`](super::PgError::Connect) (see
/// [`PgError::tls`](super::PgError::tls)): like any connection failure, a
/// guard refuses with 123 (audit unavailable) and nothing runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate does not chain to a trusted CA.
    #[error(
        "the certificate of {server} is not trusted ({reason}): set sslrootcert=/path/to/ca.pem \
         in the URL to the CA that signed it"
    )]
    Untrusted {
        /// The server (`host:port`).
        server: String,
        /// What the verifier said (`unknown issuer`).
        reason: String,
    },
    /// The certificate is trusted but does not name the host connected to
    /// (`verify-full`).
    #[error(
        "the certificate of {server} is not valid for the name {name}{presented}: connect by a \
         name it lists (host=NAME, with hostaddr=IP to choose the address), or, with \
         sslrootcert naming your own CA's file, put sslmode=verify-ca in the URL to check \
         only that this CA signed it"
    )]
    WrongName {
        /// The server (`host:port`).
        server: String,
        /// The name that was checked.
        name: String,
        /// The names the certificate lists, as ` (it names a, b)`, or empty.
        presented: String,
    },
    /// The certificate is unusable for another reason (expired, not yet
    /// valid, not for a server, badly signed…).
    #[error(
        "the certificate of {server} is not acceptable ({reason}): have the server's certificate \
         renewed or fixed"
    )]
    BadCertificate {
        /// The server (`host:port`).
        server: String,
        /// What the verifier said.
        reason: String,
    },
    /// The handshake failed for a reason other than the certificate.
    #[error(
        "the TLS handshake with {server} failed ({reason}); check the server's TLS settings \
         (ssl, ssl_min_protocol_version) and that it is a PostgreSQL server"
    )]
    Handshake {
        /// The server (`host:port`).
        server: String,
        /// What failed.
        reason: String,
    },
    /// The server does not offer TLS and the connection requires it.
    #[error(
        "the server does not offer TLS, and this connection requires it (sslmode=require or \
         stricter: from the URL, PGSSLMODE, or the default verify-full for a host off the \
         loopback); turn ssl on in the server, or, only on a network you trust, put \
         sslmode=prefer in the policy's URL"
    )]
    NotOffered {
        /// The server.
        server: String,
    },
    /// `sslrootcert` names a file that cannot be read or holds no
    /// certificate, or the platform's store is empty.
    #[error(
        "cannot use the CA certificates of {path}: {reason}; sslrootcert (in the \
         URL) must name a readable PEM file of CA certificates, or `system`"
    )]
    RootCert {
        /// The server.
        server: String,
        /// The file (or `system`).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS is required, and the URL gives only an address (`hostaddr`):
    /// the client starts TLS only with a host name.
    #[error(
        "sslmode={mode} requires TLS, which prodguard's PostgreSQL client starts only with a \
         host name, and the URL gives only an address (hostaddr): add host=NAME beside \
         hostaddr (the connection still goes to the address; with verify-full, NAME must be \
         a name the server's certificate lists)"
    )]
    NoHostName {
        /// The server.
        server: String,
        /// The mode in force.
        mode: &'static str,
    },
    /// `PGSSLMODE` asks for less than the default for this server.
    #[error(
        "PGSSLMODE={requested} is weaker than {default}, the default for this server: the \
         environment may only make TLS stricter; if that is really meant, put \
         sslmode={requested} in the policy's URL"
    )]
    WeakerEnvironment {
        /// The server.
        server: String,
        /// What `PGSSLMODE` says.
        requested: &'static str,
        /// The default for this server.
        default: &'static str,
    },
    /// `PGSSLROOTCERT` is set and the URL names no `sslrootcert`.
    #[error(
        "PGSSLROOTCERT is set, but the environment may not choose which CAs prodguard trusts \
         (whoever sets it could make their own certificate trusted): name the CA in the \
         policy's URL (sslrootcert=/path/to/ca.pem, or sslrootcert=system), or unset it"
    )]
    EnvironmentRoots {
        /// The server.
        server: String,
    },
    /// `PGSSLMODE` is not a mode prodguard knows.
    #[error("PGSSLMODE={value} is not an sslmode prodguard knows ({MODES}): fix or unset it")]
    BadEnvironment {
        /// The server.
        server: String,
        /// What `PGSSLMODE` says.
        value: String,
    },
}

impl TlsError {
    /// The server this error is about.
    pub fn server(&self) -> &str {
        match self {
            TlsError::Untrusted { server, .. }
            | TlsError::WrongName { server, .. }
            | TlsError::BadCertificate { server, .. }
            | TlsError::Handshake { server, .. }
            | TlsError::NotOffered { server }
            | TlsError::RootCert { server, .. }
            | TlsError::NoHostName { server, .. }
            | TlsError::WeakerEnvironment { server, .. }
            | TlsError::BadEnvironment { server, .. }
            | TlsError::EnvironmentRoots { server } => server,
        }
    }
}

/// The TLS parameters [`split_params`] took out of a URL (last one wins,
/// as for every parameter).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// `sslmode`, as written (decoded).
    pub(crate) sslmode: Option<String>,
    /// `sslrootcert`, as written (decoded).
    pub(crate) sslrootcert: Option<String>,
}

/// Whether a parameter is one of those [`split_params`] takes out.
fn is_tls_param(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// Takes `sslmode` and `sslrootcert` out of `url` (`postgresql://…?…` or
/// libpq's `key=value …` form) and returns the rest, for
/// `postgres::Config` to parse, and what was taken. Everything else stays
/// as written. It reads the string as `postgres::Config` does (the query
/// starts at the first `?` after the credentials; key-value pairs may be
/// quoted with `'` and escaped with `\`), so both agree on what each
/// parameter is. `Err` says what does not parse.
pub(crate) fn split_params(url: &str) -> Result<(String, TlsParams), String> {
    for prefix in ["postgres://", "postgresql://"] {
        if let Some(rest) = url.strip_prefix(prefix) {
            return split_url_query(prefix, rest);
        }
    }
    split_key_values(url)
}

/// The URL form: `rest` follows the scheme.
fn split_url_query(prefix: &str, rest: &str) -> Result<(String, TlsParams), String> {
    // As postgres::Config: the credentials run to the first `@` (anywhere),
    // the host then to `/` or `?`, the path to `?`.
    let after_credentials = rest.find('@').map_or(0, |at| at + 1);
    let Some(question) = rest[after_credentials..].find('?') else {
        return Ok((format!("{prefix}{rest}"), TlsParams::default()));
    };
    let question = after_credentials + question;
    let (head, mut query) = (&rest[..question], &rest[question + 1..]);
    let mut params = TlsParams::default();
    let mut kept: Vec<&str> = Vec::new();
    while !query.is_empty() {
        // The key runs to the next `=` (even past an `&`), the value to the
        // next `&`, exactly as postgres::Config reads them.
        let Some(eq) = query.find('=') else {
            return Err("unterminated parameter in the URL's query".to_owned());
        };
        let key = percent_decode(&query[..eq])?;
        let (pair, value, rest) = match query[eq + 1..].find('&') {
            Some(amp) => (
                &query[..eq + 1 + amp],
                &query[eq + 1..eq + 1 + amp],
                &query[eq + 2 + amp..],
            ),
            None => (query, &query[eq + 1..], ""),
        };
        query = rest;
        match key.as_str() {
            "sslmode" => params.sslmode = Some(percent_decode(value)?),
            "sslrootcert" => params.sslrootcert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        format!("{prefix}{head}")
    } else {
        format!("{prefix}{head}?{}", kept.join("&"))
    };
    Ok((url, params))
}

/// Decodes `%XX` escapes as postgres::Config does (an invalid one stays as
/// written); the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "a parameter of the URL is not UTF-8".to_owned())
}

/// The key-value form: `host=h sslmode='verify-full' …`.
fn split_key_values(text: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    let mut kept = String::with_capacity(text.len());
    let mut copied_to = 0;
    let mut chars = text.char_indices().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut chars);
        let start = chars.peek().map_or(text.len(), |&(i, _)| i);
        // The keyword runs to whitespace or `=`; none ends the list (as
        // postgres::Config, which ignores whatever follows).
        while chars
            .next_if(|&(_, c)| !c.is_whitespace() && c != '=')
            .is_some()
        {}
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        if start == end {
            break;
        }
        let keyword = &text[start..end];
        skip_ws(&mut chars);
        match chars.next() {
            Some((_, '=')) => {}
            Some((i, c)) => {
                return Err(format!(
                    "unexpected character at byte {i}: expected `=` but got `{c}`"
                ));
            }
            None => return Err("unexpected end after a keyword".to_owned()),
        }
        skip_ws(&mut chars);
        let mut value = String::new();
        if chars.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated quoted parameter value".to_owned()),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|&(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some((_, c)) = chars.next() {
                        value.push(c);
                    }
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(format!("{keyword} has no value"));
            }
        }
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        if is_tls_param(keyword) {
            kept.push_str(&text[copied_to..start]);
            kept.push(' ');
            copied_to = end;
            if keyword == "sslmode" {
                params.sslmode = Some(value);
            } else {
                params.sslrootcert = Some(value);
            }
        }
    }
    kept.push_str(&text[copied_to..]);
    Ok((kept, params))
}

/// Where the trust anchors come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// The platform's store.
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::System => f.write_str("system"),
            Roots::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a connection checks of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing: encryption only.
    Nothing,
    /// That it chains to a trusted CA.
    Chain,
    /// That it chains to a trusted CA and names the host.
    ChainAndName,
}

/// A server's TLS settings, decided when its URL is parsed and applied at
/// each connection.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The mode in force for TCP hosts.
    mode: SslMode,
    /// Where the trust anchors come from.
    roots: Roots,
    /// Whether the URL named them (so `prefer` and
    /// `require` check the chain, as libpq).
    roots_named: bool,
    /// Why every connection is refused (the environment asked for less).
    refusal: Option<TlsError>,
    /// The TCP hosts' names and ports, to name them in messages.
    ports: Vec<(String, u16)>,
    /// The server, as messages name it.
    server: String,
}

/// What a host is, for the default `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Unix,
    Loopback,
    Remote,
}

/// Whether `name` (a host name or address) is on the loopback:
/// `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where each host of `config` is. A host named and given an address
/// (`host=NAME&hostaddr=IP`) is on the loopback only when both are.
fn places(config: &Config) -> Vec<Place> {
    let (hosts, addrs) = (config.get_hosts(), config.get_hostaddrs());
    (0..hosts.len().max(addrs.len()))
        .map(|i| match (hosts.get(i), addrs.get(i)) {
            // libpq and the client connect to `hostaddr` over TCP even when
            // `host` is a socket directory.
            (Some(Host::Unix(_)), Some(addr)) if addr.is_loopback() => Place::Loopback,
            (Some(Host::Unix(_)), Some(_)) => Place::Remote,
            (Some(Host::Unix(_)), None) => Place::Unix,
            (Some(Host::Tcp(name)), addr) => {
                if is_loopback_name(name) && addr.is_none_or(IpAddr::is_loopback) {
                    Place::Loopback
                } else {
                    Place::Remote
                }
            }
            (None, Some(addr)) if addr.is_loopback() => Place::Loopback,
            (None, _) => Place::Remote,
        })
        .collect()
}

/// The default mode for these hosts: `verify-full` if one is off the
/// loopback, `prefer` if one is on it, `disable` for Unix sockets only.
fn default_mode(places: &[Place]) -> SslMode {
    if places.contains(&Place::Remote) {
        SslMode::VerifyFull
    } else if places.contains(&Place::Loopback) {
        SslMode::Prefer
    } else {
        SslMode::Disable
    }
}

impl Plan {
    /// Decides the TLS settings of `config` (already parsed, without the
    /// TLS parameters) from the URL's `params` and the environment `env`
    /// (`PGSSLMODE`, `PGSSLROOTCERT`). `server` names it in messages.
    /// `Err` when the URL's own values are wrong (the policy's to fix); a
    /// wrong or weaker environment makes every connection refuse instead.
    pub(crate) fn new(
        params: &TlsParams,
        config: &Config,
        server: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Plan, String> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let places = places(config);
        let default = default_mode(&places);
        let mut refusal = None;
        let mut mode = if !places.iter().any(|p| *p != Place::Unix) {
            // libpq never uses TLS over a Unix socket, whatever the mode.
            SslMode::Disable
        } else if let Some(text) = &params.sslmode {
            SslMode::parse(text).ok_or_else(|| format!("sslmode={text} is not one of {MODES}"))?
        } else if let Some(text) = env("PGSSLMODE") {
            match SslMode::parse(&text) {
                Some(mode) if mode >= default => mode,
                Some(mode) => {
                    refusal = Some(TlsError::WeakerEnvironment {
                        server: server.to_owned(),
                        requested: mode.as_str(),
                        default: default.as_str(),
                    });
                    default
                }
                None => {
                    refusal = Some(TlsError::BadEnvironment {
                        server: server.to_owned(),
                        value: text,
                    });
                    default
                }
            }
        } else {
            default
        };
        let named = params.sslrootcert.clone().filter(|v| !v.is_empty());
        if named.is_none() && mode != SslMode::Disable && env("PGSSLROOTCERT").is_some() {
            refusal.get_or_insert(TlsError::EnvironmentRoots {
                server: server.to_owned(),
            });
        }
        let roots = match named.as_deref() {
            None | Some("system") => Roots::System,
            Some(path) if Path::new(path).is_absolute() => Roots::File(PathBuf::from(path)),
            // Relative to the working directory, which whoever runs the
            // program chooses.
            Some(path) => {
                return Err(format!(
                    "sslrootcert={path} is not an absolute path (a relative one is read from \
                     whatever directory the program runs in): write the CA file's full path, \
                     or `system`"
                ));
            }
        };
        // The public roots vouch for names, not for a CA of one's own.
        let weak = match mode {
            SslMode::VerifyCa => true,
            SslMode::Prefer | SslMode::Require => named.is_some(),
            SslMode::Disable | SslMode::VerifyFull => false,
        };
        if weak && roots == Roots::System {
            let text = format!(
                "sslmode={mode} with sslrootcert=system (the public web PKI) would accept \
                 anyone's certificate for any name: name your own CA (sslrootcert=/path/to/ca.pem) \
                 or use sslmode=verify-full"
            );
            if params.sslmode.is_some() {
                return Err(text);
            }
            // From PGSSLMODE (on the loopback, where it may be stricter than
            // prefer): with the public roots only verify-full is stricter.
            refusal.get_or_insert(TlsError::WeakerEnvironment {
                server: server.to_owned(),
                requested: mode.as_str(),
                default: SslMode::VerifyFull.as_str(),
            });
            mode = default;
        }
        // The client has one sslmode for the whole list: one that requires
        // TLS would ask a socket host for it, which a socket never offers.
        if mode >= SslMode::Require
            && places.contains(&Place::Unix)
            && places.iter().any(|p| *p != Place::Unix)
        {
            return Err(format!(
                "the URL lists both Unix-socket directories and TCP hosts, under \
                 sslmode={mode} (from the URL, PGSSLMODE, or the default verify-full for a host \
                 off the loopback): a socket never offers TLS, so its host could never be \
                 connected to; list only TCP hosts, or only socket directories"
            ));
        }
        let ports = config.get_ports();
        let ports = config
            .get_hosts()
            .iter()
            .enumerate()
            .filter_map(|(i, host)| match host {
                Host::Tcp(name) => Some((
                    name.clone(),
                    ports.get(i).or(ports.first()).copied().unwrap_or(5432),
                )),
                Host::Unix(_) => None,
            })
            .collect();
        Ok(Plan {
            mode,
            roots,
            roots_named: named.is_some(),
            refusal,
            ports,
            server: server.to_owned(),
        })
    }

    /// The mode the client itself is told: it knows only disable, prefer
    /// and require (TLS demanded); the certificate checks are ours.
    pub(crate) fn client_mode(&self, config: &Config) -> ClientSslMode {
        match self.mode {
            SslMode::Disable => ClientSslMode::Disable,
            // Without a host name the client cannot start TLS at all
            // (`hostaddr` alone): `prefer` then means no TLS.
            SslMode::Prefer if config.get_hosts().is_empty() => ClientSslMode::Disable,
            SslMode::Prefer => ClientSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
        }
    }

    /// What is checked of the certificate.
    fn check(&self) -> Check {
        match self.mode {
            SslMode::Disable => Check::Nothing,
            SslMode::Prefer | SslMode::Require if self.roots_named => Check::Chain,
            SslMode::Prefer | SslMode::Require => Check::Nothing,
            SslMode::VerifyCa => Check::Chain,
            SslMode::VerifyFull => Check::ChainAndName,
        }
    }

    /// The mode in force (for TCP hosts).
    #[cfg(test)]
    pub(crate) fn mode(&self) -> SslMode {
        self.mode
    }

    /// `host:port` for the host the client names `hostname`.
    fn host_port(&self, hostname: &str) -> String {
        let port = self
            .ports
            .iter()
            .find(|(name, _)| name == hostname)
            .map_or(5432, |(_, port)| *port);
        if hostname.contains(':') {
            format!("[{hostname}]:{port}")
        } else {
            format!("{hostname}:{port}")
        }
    }

    /// The connector for one connection: it reads the trust anchors now
    /// (a file may have changed since the URL was parsed).
    pub(crate) fn connector(&self) -> Connector {
        let make = match &self.refusal {
            Some(refusal) => Err(refusal.clone()),
            None => self.client_config().map(MakeRustlsConnect::new),
        };
        tracing::debug!(
            target: "prodguard::pg",
            server = %self.server,
            sslmode = %self.mode,
            sslrootcert = %self.roots,
            check = ?self.check(),
            "TLS settings"
        );
        Connector {
            make,
            plan: Arc::new(self.clone()),
        }
    }

    /// The rustls configuration: the verifier the mode asks for.
    fn client_config(&self) -> Result<ClientConfig, TlsError> {
        // ring (not aws-lc-rs, which needs cmake to build). rustls 0.23.48
        // deprecates ring's provider for lacking post-quantum key exchange
        // (X25519MLKEM768, aws-lc-rs only): a harvest-now-decrypt-later
        // risk to the trail's confidentiality, not to its integrity.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.check() {
            Check::Nothing => Arc::new(EncryptOnly(provider.clone())),
            check => {
                let roots = self.root_store()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| self.root_error(e.to_string()))?;
                if check == Check::Chain {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Handshake {
                server: self.server.clone(),
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // As libpq 17: the protocol's ALPN name, which sslnegotiation=direct
        // needs and other servers ignore.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(config)
    }

    fn root_error(&self, reason: String) -> TlsError {
        TlsError::RootCert {
            server: self.server.clone(),
            path: self.roots.to_string(),
            reason,
        }
    }

    /// The trust anchors.
    fn root_store(&self) -> Result<Arc<RootCertStore>, TlsError> {
        match &self.roots {
            Roots::System => Ok(system_roots()),
            Roots::File(path) => file_roots(path)
                .map(Arc::new)
                .map_err(|reason| self.root_error(reason)),
        }
    }
}

/// The CA certificates in the PEM file at `path`: at least one, each
/// usable.
fn file_roots(path: &Path) -> Result<RootCertStore, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| format!("not PEM ({e})"))?;
        store
            .add(cert)
            .map_err(|e| format!("a certificate in it is not usable ({e})"))?;
    }
    if store.is_empty() {
        return Err("it holds no certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(store)
}

/// The public web PKI's roots (Mozilla's, built in by webpki-roots): no
/// file or variable of the environment is read.
fn system_roots() -> Arc<RootCertStore> {
    static SYSTEM: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
        Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    });
    SYSTEM.clone()
}

/// `verify-ca`: webpki's verifier, whose chain check comes before its name
/// check (rustls's `WebPkiServerVerifier::verify_server_cert` returns at
/// the first failure), with a wrong name forgiven. Any other failure
/// stands.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a named root certificate: the
/// certificate is not checked (as libpq); the handshake's signatures still
/// are, so the server holds the certificate's key.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client's TLS connector for one connection: tokio-postgres-rustls's,
/// whose failures become [`TlsError`]s naming the server.
pub(crate) struct Connector {
    make: Result<MakeRustlsConnect, TlsError>,
    plan: Arc<Plan>,
}

type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
type RustlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

impl MakeTlsConnect<Socket> for Connector {
    type Stream = RustlsStream;
    type TlsConnect = HostConnector;
    type Error = TlsError;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<HostConnector, TlsError> {
        // Called once the socket is open, before anything is sent on it.
        let make = self.make.as_mut().map_err(|e| e.clone())?;
        let plan = &self.plan;
        if hostname.is_empty()
            && plan.ports.is_empty()
            && plan.mode >= SslMode::Require
            && plan.refusal.is_none()
        {
            // `hostaddr` alone: the client cannot start TLS without a name.
            return Err(TlsError::NoHostName {
                server: plan.server.clone(),
                mode: plan.mode.as_str(),
            });
        }
        let inner = match MakeTlsConnect::<Socket>::make_tls_connect(make, hostname) {
            Ok(inner) => inner,
            Err(never) => match never {},
        };
        Ok(HostConnector {
            inner,
            server: plan.host_port(hostname),
            name: hostname.to_owned(),
        })
    }
}

/// The connector for one host.
pub(crate) struct HostConnector {
    inner: RustlsConnect,
    server: String,
    name: String,
}

impl TlsConnect<Socket> for HostConnector {
    type Stream = RustlsStream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, TlsError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let HostConnector {
            inner,
            server,
            name,
        } = self;
        let handshake = inner.connect(stream);
        Box::pin(async move {
            handshake
                .await
                .map_err(|error| handshake_error(&server, &name, &error))
        })
    }
}

/// What a failed handshake with `server` (connected to as `name`) means.
fn handshake_error(server: &str, name: &str, error: &std::io::Error) -> TlsError {
    let server = server.to_owned();
    let Some(rustls_error) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return TlsError::Handshake {
            server,
            reason: error.to_string(),
        };
    };
    let rustls::Error::InvalidCertificate(certificate) = rustls_error else {
        return TlsError::Handshake {
            server,
            reason: rustls_error.to_string(),
        };
    };
    match certificate {
        CertificateError::UnknownIssuer => TlsError::Untrusted {
            server,
            reason: "unknown issuer".to_owned(),
        },
        CertificateError::NotValidForName => TlsError::WrongName {
            server,
            name: name.to_owned(),
            presented: String::new(),
        },
        CertificateError::NotValidForNameContext { presented, .. } => TlsError::WrongName {
            server,
            name: name.to_owned(),
            presented: if presented.is_empty() {
                " (it names none)".to_owned()
            } else {
                let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
                format!(" (it names {})", names.join(", "))
            },
        },
        other => TlsError::BadCertificate {
            server,
            reason: other.to_string(),
        },
    }
}

/// A name as rustls presents it (`DnsName("db.internal")`,
/// `IpAddress(127.0.0.1)`), without the wrapping.
fn bare_name(presented: &str) -> &str {
    match presented.split_once('(') {
        Some((kind, rest)) if kind.chars().all(|c| c.is_ascii_alphanumeric()) => rest
            .strip_suffix(')')
            .map_or(presented, |inner| inner.trim_matches('"')),
        _ => presented,
    }
}

/// The TLS failure inside a client error, if it is one: ours, or the
/// client's own "server does not support TLS" (named after `server`).
pub(crate) fn tls_failure(error: &postgres::Error, server: &str) -> Option<TlsError> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<TlsError>() {
            return Some(tls.clone());
        }
        // The client's own words when the server answers `N` to SSLRequest
        // under sslmode=require (tokio-postgres's connect_tls).
        if cause.to_string() == "server does not support TLS" {
            return Some(TlsError::NotOffered {
                server: server.to_owned(),
            });
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Option<String>, Option<String>) {
        let (rest, params) = split_params(url).unwrap_or_else(|e| unreachable!("{url}: {e}"));
        (rest, params.sslmode, params.sslrootcert)
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn the_tls_parameters_leave_the_url_and_the_rest_stays() {
        for (url, rest, mode, root) in [
            (
                "postgresql://app@db/fleet?sslmode=verify-full&sslrootcert=/etc/ca.pem",
                "postgresql://app@db/fleet",
                s("verify-full"),
                s("/etc/ca.pem"),
            ),
            (
                "postgres://app@db/fleet?connect_timeout=3&sslmode=verify-ca&application_name=x",
                "postgres://app@db/fleet?connect_timeout=3&application_name=x",
                s("verify-ca"),
                None,
            ),
            (
                "postgresql://db.internal:5433/fleet?sslrootcert=%2Fetc%2Fmy%20ca.pem",
                "postgresql://db.internal:5433/fleet",
                None,
                s("/etc/my ca.pem"),
            ),
            // A key may be percent-encoded; the last value wins.
            (
                "postgresql://h/d?ssl%6Dode=require&sslmode=verify-full",
                "postgresql://h/d",
                s("verify-full"),
                None,
            ),
            // A `?` in the password is not the query.
            (
                "postgresql://u:p?ss@h/d?sslmode=disable",
                "postgresql://u:p?ss@h/d",
                s("disable"),
                None,
            ),
            ("postgresql://u:pw@h/d", "postgresql://u:pw@h/d", None, None),
            (
                "postgresql://h/d?host=db.test&hostaddr=127.0.0.1",
                "postgresql://h/d?host=db.test&hostaddr=127.0.0.1",
                None,
                None,
            ),
            (
                "host=db.internal sslmode=verify-full dbname=fleet",
                "host=db.internal   dbname=fleet",
                s("verify-full"),
                None,
            ),
            (
                "host=h sslrootcert = '/etc/my ca\\'s.pem' sslmode='verify-ca'",
                "host=h    ",
                s("verify-ca"),
                s("/etc/my ca's.pem"),
            ),
            (
                "sslmode=require host=h password='a b'",
                "  host=h password='a b'",
                s("require"),
                None,
            ),
            (
                "host=h password=sslmode=x user=u",
                "host=h password=sslmode=x user=u",
                None,
                None,
            ),
            (
                "host=h sslrootcert=/a\\ b.pem",
                "host=h  ",
                None,
                s("/a b.pem"),
            ),
        ] {
            assert_eq!(split(url), (rest.to_owned(), mode, root), "{url}");
            // What is left parses, to what the original would have been.
            let config: Config = rest.parse().unwrap_or_else(|e| unreachable!("{rest}: {e}"));
            assert!(!config.get_hosts().is_empty(), "{rest}");
        }
    }

    #[test]
    fn what_the_client_cannot_parse_is_an_error_here_too() {
        for url in [
            "postgresql://h/d?sslmode",
            "host=h sslmode",
            "host=h sslmode='verify-full",
            "host=h sslmode=",
        ] {
            assert!(split_params(url).is_err(), "{url}");
            assert!(url.parse::<Config>().is_err(), "{url}");
        }
    }

    /// The plan for `url` with the environment `env`.
    fn plan(url: &str, env: &[(&str, &str)]) -> Result<Plan, String> {
        let (rest, params) = split_params(url)?;
        let config: Config = rest.parse().map_err(|e: postgres::Error| e.to_string())?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Plan::new(&params, &config, "the server", &|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    /// Why the URL itself is refused (it must be).
    fn url_error(url: &str) -> String {
        plan(url, &[])
            .err()
            .unwrap_or_else(|| unreachable!("{url} is accepted"))
    }

    fn mode(url: &str, env: &[(&str, &str)]) -> SslMode {
        let plan = plan(url, env).unwrap_or_else(|e| unreachable!("{url}: {e}"));
        assert!(plan.refusal.is_none(), "{url}: {:?}", plan.refusal);
        plan.mode()
    }

    #[test]
    fn the_default_is_verify_full_off_the_loopback_and_prefer_on_it() {
        use SslMode::*;
        for (url, expected) in [
            ("postgresql://db.internal/fleet", VerifyFull),
            ("postgresql://10.0.0.5:5432/fleet", VerifyFull),
            ("postgresql://[2001:db8::1]/fleet", VerifyFull),
            ("postgresql://localhost/fleet", Prefer),
            ("postgresql://LocalHost:5999/fleet", Prefer),
            ("postgresql://127.0.0.1/fleet", Prefer),
            ("postgresql://127.1.2.3/fleet", Prefer),
            ("postgresql://[::1]:5432/fleet", Prefer),
            ("host=localhost dbname=fleet", Prefer),
            ("hostaddr=127.0.0.1 dbname=fleet", Prefer),
            ("hostaddr=192.0.2.7 dbname=fleet", VerifyFull),
            // A name off the loopback, even at a loopback address (a tunnel):
            // the certificate is checked against the name.
            (
                "postgresql://db.internal/fleet?hostaddr=127.0.0.1",
                VerifyFull,
            ),
            ("postgresql://localhost/fleet?hostaddr=10.1.1.1", VerifyFull),
            // One host off the loopback is enough.
            ("postgresql://localhost,db.internal/fleet", VerifyFull),
            // Unix sockets: no TLS, whatever the URL or the environment say.
            ("host=/run/postgresql dbname=fleet", Disable),
            // ... unless hostaddr is given: then the client connects over TCP.
            (
                "host=/run/postgresql hostaddr=10.0.0.5 dbname=fleet",
                VerifyFull,
            ),
            (
                "host=/run/postgresql hostaddr=127.0.0.1 dbname=fleet",
                Prefer,
            ),
            ("postgresql://%2Frun%2Fpostgresql/fleet", Disable),
            (
                "host=/run/postgresql dbname=fleet sslmode=verify-full",
                Disable,
            ),
            // The URL decides, even to loosen: the policy names it.
            ("postgresql://db.internal/fleet?sslmode=disable", Disable),
            ("postgresql://db.internal/fleet?sslmode=require", Require),
            (
                "postgresql://localhost/fleet?sslmode=verify-ca&sslrootcert=/ca.pem",
                VerifyCa,
            ),
        ] {
            assert_eq!(mode(url, &[]), expected, "{url}");
        }
        assert_eq!(
            mode("host=/run/postgresql", &[("PGSSLMODE", "disable")]),
            SslMode::Disable
        );
    }

    #[test]
    fn pgsslmode_may_only_tighten_the_default() {
        use SslMode::*;
        let remote = "postgresql://db.internal/fleet";
        let local = "postgresql://127.0.0.1/fleet";
        assert_eq!(mode(remote, &[("PGSSLMODE", "verify-full")]), VerifyFull);
        assert_eq!(mode(local, &[("PGSSLMODE", "prefer")]), Prefer);
        assert_eq!(mode(local, &[("PGSSLMODE", "require")]), Require);
        assert_eq!(mode(local, &[("PGSSLMODE", "verify-full")]), VerifyFull);
        // Empty is unset.
        assert_eq!(mode(remote, &[("PGSSLMODE", "")]), VerifyFull);
        // The URL's own sslmode wins over the environment, either way.
        assert_eq!(
            mode(
                "postgresql://db.internal/fleet?sslmode=require",
                &[("PGSSLMODE", "disable")]
            ),
            Require
        );
        assert_eq!(
            mode(
                "postgresql://db.internal/fleet?sslmode=disable",
                &[("PGSSLMODE", "verify-full")]
            ),
            Disable
        );

        for (url, weaker) in [
            (remote, "disable"),
            (remote, "prefer"),
            (remote, "require"),
            (remote, "verify-ca"),
            (local, "disable"),
            // With the public roots, verify-ca checks nobody: only
            // verify-full is stricter than the loopback's prefer.
            (local, "verify-ca"),
        ] {
            let plan = plan(url, &[("PGSSLMODE", weaker)]).unwrap_or_else(|e| unreachable!("{e}"));
            let Some(refusal) = &plan.refusal else {
                unreachable!("{url} with PGSSLMODE={weaker} is not refused");
            };
            assert!(
                matches!(refusal, TlsError::WeakerEnvironment { requested, .. } if *requested == weaker),
                "{refusal:?}"
            );
            let text = refusal.to_string();
            assert!(text.contains(&format!("PGSSLMODE={weaker}")), "{text}");
            assert!(text.contains(&format!("sslmode={weaker}")), "{text}");
            assert!(text.contains("policy's URL"), "{text}");
            // Refused at every connection, before any handshake.
            let mut connector = plan.connector();
            assert_eq!(
                connector.make_tls_connect("db.internal").err().as_ref(),
                Some(refusal)
            );
            // The mode stays the default, never the one asked for.
            assert_eq!(plan.mode(), mode(url, &[]), "{url} PGSSLMODE={weaker}");
        }
        for bogus in ["allow", "verify_full", "off"] {
            let plan =
                plan(remote, &[("PGSSLMODE", bogus)]).unwrap_or_else(|e| unreachable!("{e}"));
            assert!(
                matches!(&plan.refusal, Some(TlsError::BadEnvironment { value, .. }) if value == bogus),
                "{:?}",
                plan.refusal
            );
            assert_eq!(plan.mode(), VerifyFull);
        }
    }

    #[test]
    fn a_bad_sslmode_in_the_url_is_the_urls_error() {
        for url in [
            "postgresql://h/d?sslmode=bogus",
            "postgresql://h/d?sslmode=allow",
            "host=h sslmode=VERIFY-FULL",
        ] {
            let err = url_error(url);
            assert!(err.contains("verify-full"), "{err}");
        }
    }

    #[test]
    fn what_is_checked_follows_the_mode_and_a_named_root() {
        let check = |url: &str| {
            plan(url, &[])
                .unwrap_or_else(|e| unreachable!("{e}"))
                .check()
        };
        let remote = "postgresql://db.internal/fleet";
        assert_eq!(check(remote), Check::ChainAndName);
        assert_eq!(
            check(&format!("{remote}?sslmode=verify-ca&sslrootcert=/ca.pem")),
            Check::Chain
        );
        assert_eq!(check(&format!("{remote}?sslmode=require")), Check::Nothing);
        assert_eq!(
            check(&format!("{remote}?sslmode=require&sslrootcert=/ca.pem")),
            Check::Chain
        );
        assert_eq!(check(&format!("{remote}?sslmode=disable")), Check::Nothing);
        assert_eq!(check("postgresql://localhost/d"), Check::Nothing);
    }

    #[test]
    fn the_public_roots_never_vouch_for_a_ca_alone() {
        // verify-ca (or require/prefer naming them) with the public roots
        // would accept anyone's certificate: the URL is refused.
        for url in [
            "postgresql://db.internal/fleet?sslmode=verify-ca",
            "postgresql://db.internal/fleet?sslmode=verify-ca&sslrootcert=system",
            "postgresql://db.internal/fleet?sslmode=require&sslrootcert=system",
            "postgresql://localhost/fleet?sslmode=prefer&sslrootcert=system",
        ] {
            let err = url_error(url);
            assert!(err.contains("name your own CA"), "{url}: {err}");
        }
        // verify-full with them is what they are for.
        assert_eq!(
            plan("postgresql://db.internal/fleet?sslrootcert=system", &[])
                .unwrap_or_else(|e| unreachable!("{e}"))
                .check(),
            Check::ChainAndName
        );
    }

    #[test]
    fn the_root_certificate_comes_from_the_url_never_the_environment() {
        let plan_of = |url: &str, env: &[(&str, &str)]| {
            plan(url, env).unwrap_or_else(|e| unreachable!("{e}"))
        };
        let env = [("PGSSLROOTCERT", "/env/ca.pem")];
        // The URL names them: the environment is not read.
        let named = plan_of("postgresql://h/d?sslrootcert=/url/ca.pem", &env);
        assert_eq!(named.roots, Roots::File("/url/ca.pem".into()));
        assert!(named.refusal.is_none());
        let system = plan_of("postgresql://h/d?sslrootcert=system", &env);
        assert_eq!(system.roots, Roots::System);
        assert!(system.refusal.is_none());
        // The URL names none: PGSSLROOTCERT refuses every connection.
        let from_env = plan_of("postgresql://h/d", &env);
        assert_eq!(from_env.roots, Roots::System);
        let Some(refusal) = &from_env.refusal else {
            unreachable!("PGSSLROOTCERT chose the trust anchors");
        };
        assert!(
            matches!(refusal, TlsError::EnvironmentRoots { .. }),
            "{refusal:?}"
        );
        assert!(refusal.to_string().contains("sslrootcert="), "{refusal}");
        let mut connector = from_env.connector();
        assert!(connector.make_tls_connect("h").is_err());
        // Unset or empty: the public roots.
        assert_eq!(plan_of("postgresql://h/d", &[]).roots, Roots::System);
        assert!(
            plan_of("postgresql://h/d", &[("PGSSLROOTCERT", "")])
                .refusal
                .is_none()
        );
    }

    #[test]
    fn a_relative_root_file_is_the_urls_error() {
        for url in [
            "postgresql://h/d?sslrootcert=ca.pem",
            "postgresql://h/d?sslrootcert=./ca.pem",
            "postgresql://h/d?sslrootcert=System",
        ] {
            let err = url_error(url);
            assert!(err.contains("not an absolute path"), "{url}: {err}");
        }
    }

    #[test]
    fn an_address_alone_cannot_start_tls_and_the_error_says_to_add_a_name() {
        for (url, mode) in [
            ("hostaddr=192.0.2.7 dbname=fleet", "verify-full"),
            ("hostaddr=127.0.0.1 dbname=fleet sslmode=require", "require"),
        ] {
            let mut connector = plan(url, &[])
                .unwrap_or_else(|e| unreachable!("{e}"))
                .connector();
            let Err(err) = connector.make_tls_connect("") else {
                unreachable!("{url} starts TLS without a name");
            };
            let text = err.to_string();
            assert!(matches!(err, TlsError::NoHostName { .. }), "{text}");
            assert!(
                text.contains(&format!("sslmode={mode} requires TLS")),
                "{text}"
            );
            assert!(text.contains("add host=NAME beside hostaddr"), "{text}");
        }
    }

    #[test]
    fn sockets_and_tcp_hosts_in_one_list_are_refused_where_tls_is_required() {
        for url in [
            "host=/run/postgresql,db.internal dbname=fleet",
            "host=/run/postgresql,localhost dbname=fleet sslmode=require",
            "postgresql://%2Frun%2Fpostgresql,db.internal/fleet",
        ] {
            let err = url_error(url);
            assert!(
                err.contains("both Unix-socket directories and TCP hosts"),
                "{url}: {err}"
            );
            assert!(err.contains("list only TCP hosts"), "{url}: {err}");
        }
        // Where TLS is only preferred (or off), a socket host connects without it.
        assert_eq!(
            mode("host=/run/postgresql,localhost dbname=fleet", &[]),
            SslMode::Prefer
        );
        assert_eq!(
            mode(
                "host=/run/postgresql,db.internal dbname=fleet sslmode=disable",
                &[]
            ),
            SslMode::Disable
        );
        // A socket directory with hostaddr is a TCP host.
        assert_eq!(
            mode(
                "host=/run/postgresql,db.internal hostaddr=10.0.0.5,10.0.0.6 dbname=fleet",
                &[]
            ),
            SslMode::VerifyFull
        );
    }

    #[test]
    fn presented_names_lose_their_wrapping() {
        assert_eq!(bare_name("DnsName(\"db.internal\")"), "db.internal");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("db.internal"), "db.internal");
        assert_eq!(bare_name("odd (name"), "odd (name");
    }

    #[test]
    fn a_root_file_that_cannot_be_used_is_named() {
        // Removed with everything in it when the test ends, even by a panic.
        let temp = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let dir = temp.path();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap_or_else(|e| unreachable!("{e}"));
        let missing = dir.join("missing.pem");
        for (path, why) in [(&empty, "holds no certificate"), (&missing, "No such file")] {
            let url = format!("postgresql://db.internal/d?sslrootcert={}", path.display());
            let mut connector = plan(&url, &[])
                .unwrap_or_else(|e| unreachable!("{e}"))
                .connector();
            let Err(err) = connector.make_tls_connect("db.internal") else {
                unreachable!("{url} connects");
            };
            let text = err.to_string();
            assert!(matches!(err, TlsError::RootCert { .. }), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(why), "{text}");
        }
    }
}
