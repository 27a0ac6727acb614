//! Keeping database passwords out of everything prodguard shows or records.
//!
//! A target may be a PostgreSQL URL, and a URL may carry a password. Targets
//! reach audit records, prompts, approval tokens and lock keys; passwords
//! must reach none of them. The URL is read the way the PostgreSQL client
//! reads it (the user information ends at the first `@`; query keys are
//! percent-decoded), so whatever the client would use as the password is
//! what is removed.

/// Whether `text` starts like a PostgreSQL URL (any letter case).
fn scheme_len(text: &str) -> Option<usize> {
    ["postgresql://", "postgres://"].iter().find_map(|scheme| {
        text.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .map(|_| scheme.len())
    })
}

/// `target` without its password, when it is a PostgreSQL URL that carries
/// one (`postgresql://app:secret@db/orders` → `postgresql://app@db/orders`;
/// a `password` query parameter is dropped). `None` when there is nothing to
/// remove.
///
/// ```
/// use prodguard_core::secret::redact_password;
/// assert_eq!(
///     redact_password("postgresql://app:secret@db.internal/orders").as_deref(),
///     Some("postgresql://app@db.internal/orders")
/// );
/// assert_eq!(redact_password("orders.db"), None);
/// ```
pub fn redact_password(target: &str) -> Option<String> {
    let scheme = scheme_len(target)?;
    let rest = &target[scheme..];
    let mut out = String::with_capacity(target.len());
    out.push_str(&target[..scheme]);
    let mut changed = false;
    // The client takes everything before the first `@` as `user[:password]`.
    let rest = match rest.split_once('@') {
        Some((credentials, after)) => {
            let user = match credentials.split_once(':') {
                Some((user, _password)) => {
                    changed = true;
                    user
                }
                None => credentials,
            };
            out.push_str(user);
            out.push('@');
            after
        }
        None => rest,
    };
    match rest.split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split('=').next().unwrap_or_default();
                    let secret = percent_decoded(key).eq_ignore_ascii_case("password");
                    changed |= secret;
                    !secret
                })
                .collect();
            if !kept.is_empty() {
                out.push('?');
                out.push_str(&kept.join("&"));
            }
        }
        None => out.push_str(rest),
    }
    changed.then_some(out)
}

/// Whether `target` is a PostgreSQL URL with a password in it.
///
/// ```
/// use prodguard_core::secret::has_password;
/// assert!(has_password("postgres://app:pw@db/x"));
/// assert!(!has_password("postgres://app@db/x"));
/// ```
pub fn has_password(target: &str) -> bool {
    redact_password(target).is_some()
}

/// `text` with `%XX` escapes decoded (invalid escapes kept as they are).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits make a byte (each is < 16).
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn whatever_the_client_would_take_as_the_password_is_removed() {
        for (target, expected) in [
            (
                "postgresql://app:s3cr%40t@db.internal:5433/orders",
                Some("postgresql://app@db.internal:5433/orders"),
            ),
            (
                "postgres://app:pw@db/orders?sslmode=disable",
                Some("postgres://app@db/orders?sslmode=disable"),
            ),
            (
                "postgresql://app@db/orders?password=pw&sslmode=disable",
                Some("postgresql://app@db/orders?sslmode=disable"),
            ),
            (
                "postgresql://db/orders?PASSWORD=pw",
                Some("postgresql://db/orders"),
            ),
            (
                "postgresql://db/orders?p%61ssword=pw",
                Some("postgresql://db/orders"),
            ),
            // The client's user information ends at the first `@`, and a
            // password may hold `/`, `?` or `#` (base64 often does).
            (
                "postgresql://app:pa/ss@db/orders",
                Some("postgresql://app@db/orders"),
            ),
            (
                "postgresql://app:pa?ss@db/orders",
                Some("postgresql://app@db/orders"),
            ),
            (
                "postgresql://app:pa#ss@db/orders",
                Some("postgresql://app@db/orders"),
            ),
            ("POSTGRESQL://app:pw@db/x", Some("POSTGRESQL://app@db/x")),
            ("postgresql://app:pw@db", Some("postgresql://app@db")),
            ("postgresql://app@db/orders", None),
            ("postgresql://db/orders?sslmode=require", None),
            ("orders.db", None),
            ("mysql://app:pw@db/orders", None),
            ("postgres", None),
            ("", None),
        ] {
            assert_eq!(redact_password(target).as_deref(), expected, "{target}");
            if let Some(redacted) = expected {
                assert!(
                    !redacted.contains("pw") && !redacted.contains("pa"),
                    "{redacted}"
                );
            }
        }
    }
}
