//! Rendering a policy back to TOML (for `prodguard policy show`).

use std::fmt::Write as _;

use super::duration::format_duration;
use super::{Policy, Requirement, UnknownEnvironment};

impl Policy {
    /// The policy as TOML that [`Policy::parse_toml`] reads back to an equal
    /// policy (given the same file name), every setting written out,
    /// defaults included.
    ///
    /// Rules are written with explicit names, so unnamed rules keep their
    /// `rule #N (line L)` names. A policy assembled by hand round-trips when
    /// it would pass validation (e.g. `max_ttl_seconds` > 0).
    ///
    /// ```
    /// use prodguard_core::Policy;
    /// let policy = Policy::builtin_default();
    /// let text = policy.to_toml_string();
    /// assert_eq!(Policy::parse_toml(&text, "<default>"), Ok(policy));
    /// ```
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        let env = &self.environment;
        out.push_str("[environment]\n");
        let unknown = match env.unknown {
            UnknownEnvironment::Protected => "protected",
            UnknownEnvironment::Tier(tier) => tier.as_str(),
        };
        line(&mut out, "unknown", &quote(unknown));
        if !env.marker_file.is_empty() {
            line(&mut out, "marker_file", &quote(&env.marker_file));
        }
        if !env.aliases.is_empty() {
            let pairs = env
                .aliases
                .iter()
                .map(|(name, tier)| (name.as_str(), quote(tier.as_str())));
            line(&mut out, "aliases", &inline_table(pairs));
        }
        if !env.hostnames.is_empty() {
            let pairs = env
                .hostnames
                .iter()
                .map(|h| (h.pattern.as_str(), quote(h.tier.as_str())));
            line(&mut out, "hostnames", &inline_table(pairs));
        }

        let audit = &self.audit;
        out.push_str("\n[audit]\n");
        if let Some(log) = &audit.log {
            line(&mut out, "log", &quote(log));
        }
        line(&mut out, "durability", &quote(audit.durability.as_str()));
        if let Some(n) = audit.rotate_bytes {
            line(&mut out, "rotate_bytes", &n.to_string());
        }
        if let Some(n) = audit.seal_every {
            line(&mut out, "seal_every", &n.to_string());
        }
        if let Some(file) = &audit.seal_key_file {
            line(&mut out, "seal_key_file", &quote(file));
        }
        if let Some(url) = &audit.sink {
            line(&mut out, "sink", &quote(url));
        }

        let approval = &self.approval;
        out.push_str("\n[approval]\n");
        if !approval.approvers.is_empty() {
            let listed: Vec<String> = approval
                .approvers
                .iter()
                .map(|(name, approver)| {
                    format!(
                        "{} = {{ key = {}, user = {} }}",
                        quote(name),
                        quote(&crate::approval::public_key_text(&approver.key)),
                        quote(&approver.user)
                    )
                })
                .collect();
            line(
                &mut out,
                "approvers",
                &format!("{{ {} }}", listed.join(", ")),
            );
        }
        line(
            &mut out,
            "max_ttl",
            &quote(&format_duration(approval.max_ttl_seconds)),
        );
        line(&mut out, "four_eyes", &approval.four_eyes.to_string());
        if let Some(url) = &approval.ledger {
            line(&mut out, "ledger", &quote(url));
        }
        if !approval.break_glass_users.is_empty() {
            line(
                &mut out,
                "break_glass_users",
                &array(approval.break_glass_users.iter().map(String::as_str)),
            );
        }

        let fleet = &self.fleet;
        if fleet.lock.is_some() || fleet.wait_seconds > 0 {
            out.push_str("\n[fleet]\n");
            if let Some(url) = &fleet.lock {
                line(&mut out, "lock", &quote(url));
            }
            if fleet.wait_seconds > 0 {
                line(
                    &mut out,
                    "wait",
                    &quote(&format_duration(fleet.wait_seconds)),
                );
            }
        }

        let promotion = &self.promotion;
        if *promotion != super::PromotionConfig::default() {
            out.push_str("\n[promotion]\n");
            if let Some(from) = &promotion.from {
                line(&mut out, "from", &quote(from));
            }
            line(
                &mut out,
                "within",
                &quote(&format_duration(promotion.within_seconds)),
            );
            if let Some(log) = &promotion.staging_log {
                line(&mut out, "staging_log", &quote(log));
            }
        }

        let sql = &self.sql;
        if *sql != super::SqlConfig::default() {
            out.push_str("\n[sql]\n");
            line(
                &mut out,
                "statement_timeout",
                &quote(&format_duration(sql.statement_timeout_seconds)),
            );
            line(
                &mut out,
                "lock_timeout",
                &quote(&format_duration(sql.lock_timeout_seconds)),
            );
        }

        if !self.targets.is_empty() {
            out.push_str("\n[targets]\n");
            for target in &self.targets {
                line(
                    &mut out,
                    &quote(&target.pattern),
                    &quote(target.tier.as_str()),
                );
            }
        }

        for rule in &self.rules {
            out.push_str("\n[[rule]]\n");
            line(&mut out, "name", &quote(&rule.name));
            line(
                &mut out,
                "operations",
                &array(rule.operations.iter().map(String::as_str)),
            );
            if !rule.tiers.is_empty() {
                line(
                    &mut out,
                    "tiers",
                    &array(rule.tiers.iter().map(|t| t.as_str())),
                );
            }
            if !rule.require.is_empty() {
                line(
                    &mut out,
                    "require",
                    &array(rule.require.iter().map(|r| r.as_str())),
                );
            }
            if rule.require.contains(&Requirement::Confirm) {
                let mode = [("mode", quote(rule.confirm_mode.as_str()))];
                line(&mut out, "confirm", &inline_table(mode.into_iter()));
            }
            if let Some(backup) = &rule.backup {
                let mut pairs: Vec<(&str, String)> =
                    vec![("provider", quote(backup.source().as_str()))];
                if let Some(command) = backup.command() {
                    pairs.push(("command", quote(command)));
                }
                if let Some(verify) = backup.verify() {
                    pairs.push(("verify", quote(verify)));
                }
                if let Some(path) = backup.path() {
                    pairs.push(("path", quote(path)));
                }
                if let Some(age) = backup.max_age_seconds() {
                    pairs.push(("max_age", quote(&format_duration(age))));
                }
                line(&mut out, "backup", &inline_table(pairs.into_iter()));
            }
            if rule.break_glass {
                line(&mut out, "break_glass", "true");
            }
            if let Some(rows) = rule.max_rows {
                line(&mut out, "max_rows", &rows.to_string());
            }
            if let Some(rows) = rule.confirm_above_rows {
                line(&mut out, "confirm_above_rows", &rows.to_string());
            }
            if rule.outside_transaction {
                line(&mut out, "outside_transaction", "true");
            }
            if rule.agent_deny {
                line(&mut out, "agent", &quote("deny"));
            }
            if let Some(reason) = &rule.deny {
                line(&mut out, "deny", &quote(reason));
            }
            if !rule.actors.is_empty() {
                line(
                    &mut out,
                    "actors",
                    &array(rule.actors.iter().map(|a| a.as_str())),
                );
            }
        }
        out
    }
}

fn line(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "{key} = {value}");
}

fn array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.map(quote).collect();
    format!("[{}]", items.join(", "))
}

fn inline_table<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> String {
    let pairs: Vec<String> = pairs.map(|(k, v)| format!("{} = {v}", key(k))).collect();
    if pairs.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", pairs.join(", "))
    }
}

/// A bare key when TOML allows one, else a quoted key.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { k.to_string() } else { quote(k) }
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
