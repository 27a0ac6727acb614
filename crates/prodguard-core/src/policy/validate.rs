//! One validator for both formats: walks the spanned tree, builds a
//! [`Policy`], and reports the first problem with its position, what is
//! wrong and what was expected.

use std::collections::BTreeMap;

use super::duration::parse_duration;
use super::glob::validate_operation_glob;
use super::tree::{Entry, Format, Kind, Locator, Node};
use super::{
    ActorKind, ApprovalConfig, Approver, AuditConfig, BackupSource, BackupSpec, ConfirmMode,
    Durability, EnvironmentConfig, FleetConfig, HostnameHint, POSTGRES_URL_SCHEMES, Policy,
    PolicyError, PromotionConfig, Requirement, Rule, SqlConfig, TargetTier, UnknownEnvironment,
};
use crate::Tier;

const TOP_KEYS: &[&str] = &[
    "environment",
    "audit",
    "approval",
    "fleet",
    "promotion",
    "sql",
    "targets",
    "rule",
];
const ENVIRONMENT_KEYS: &[&str] = &["unknown", "marker_file", "aliases", "hostnames"];
const AUDIT_KEYS: &[&str] = &[
    "log",
    "durability",
    "seal_every",
    "seal_key_file",
    "rotate_bytes",
    "sink",
];
const APPROVAL_KEYS: &[&str] = &[
    "approvers",
    "max_ttl",
    "four_eyes",
    "ledger",
    "break_glass_users",
];
const APPROVER_KEYS: &[&str] = &["key", "user"];
const FLEET_KEYS: &[&str] = &["lock", "wait"];
const PROMOTION_KEYS: &[&str] = &["from", "within", "staging_log"];
const SQL_KEYS: &[&str] = &["statement_timeout", "lock_timeout"];
const RULE_KEYS: &[&str] = &[
    "name",
    "operations",
    "tiers",
    "require",
    "confirm",
    "backup",
    "deny",
    "actors",
    "break_glass",
    "max_rows",
    "confirm_above_rows",
    "outside_transaction",
    "agent",
];
const CONFIRM_KEYS: &[&str] = &["mode"];
const BACKUP_KEYS: &[&str] = &["provider", "command", "verify", "path", "max_age"];

const TIER_NAMES: &[&str] = &[
    "production",
    "staging",
    "development",
    "test",
    "local",
    "unknown",
];
const TIER_EXPECTED: &str = "production, staging, development, test, local or unknown \
     (or a built-in alias such as prod, stage, dev)";

type Result<T> = std::result::Result<T, PolicyError>;

/// Builds a policy from a parsed document.
pub(crate) fn policy_from_tree(
    root: &Node,
    locator: &Locator<'_>,
    format: Format,
    source: &str,
) -> Result<Policy> {
    let v = Validator {
        loc: locator,
        format,
        root,
    };
    v.policy(source)
}

/// The dotted names of the keys a document sets inside its tables
/// (`approval.max_ttl`), for layering.
fn keys_set(top: &[Entry]) -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    for section in top {
        if let Kind::Table(entries) = &section.value.kind {
            for entry in entries {
                keys.insert(format!("{}.{}", section.key, entry.key));
            }
        }
    }
    keys
}

struct Validator<'a> {
    loc: &'a Locator<'a>,
    format: Format,
    root: &'a Node,
}

/// Where a key sits, for "unknown key … in …".
#[derive(Clone, Copy)]
enum Place {
    Top,
    Environment,
    Audit,
    Approval,
    Approver,
    Fleet,
    Promotion,
    Sql,
    Rule,
    Confirm,
    Backup,
}

impl Place {
    fn phrase(self) -> &'static str {
        match self {
            Place::Top => "at the top level",
            Place::Environment => "in [environment]",
            Place::Audit => "in [audit]",
            Place::Approval => "in [approval]",
            Place::Approver => "in an approver of [approval] approvers",
            Place::Fleet => "in [fleet]",
            Place::Promotion => "in [promotion]",
            Place::Sql => "in [sql]",
            Place::Rule => "in [[rule]]",
            Place::Confirm => "in `confirm` of [[rule]]",
            Place::Backup => "in `backup` of [[rule]]",
        }
    }
}

impl Validator<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> PolicyError {
        self.loc.error(offset, message)
    }

    fn type_err(&self, label: &str, node: &Node, expected: &str) -> PolicyError {
        let found = node.describe(self.format);
        let mut message = format!("`{label}` must be {expected}, found {found}");
        if matches!(node.kind, Kind::Null) {
            message.push_str("; remove the key to use the default");
        }
        self.err(node.span.start, message)
    }

    fn table_word(&self) -> &'static str {
        match self.format {
            Format::Toml => "a table",
            Format::Json => "an object",
        }
    }

    fn table<'n>(&self, label: &str, node: &'n Node) -> Result<&'n [Entry]> {
        match &node.kind {
            Kind::Table(entries) => Ok(entries),
            _ => Err(self.type_err(label, node, self.table_word())),
        }
    }

    fn array<'n>(&self, label: &str, node: &'n Node, of: &str) -> Result<&'n [Node]> {
        match &node.kind {
            Kind::Array(items) => Ok(items),
            _ => Err(self.type_err(label, node, &format!("an array of {of}"))),
        }
    }

    fn string<'n>(&self, label: &str, node: &'n Node) -> Result<&'n str> {
        match &node.kind {
            Kind::String(s) => Ok(s),
            _ => Err(self.type_err(label, node, "a string")),
        }
    }

    /// A string that is not empty or blank.
    fn text(&self, label: &str, node: &Node) -> Result<String> {
        let s = self.string(label, node)?;
        if s.trim().is_empty() {
            return Err(self.err(
                node.span.start,
                format!(
                    "`{label}` must not be empty; remove the key to use the default or give a value"
                ),
            ));
        }
        Ok(s.to_string())
    }

    fn bool(&self, label: &str, node: &Node) -> Result<bool> {
        match node.kind {
            Kind::Bool(b) => Ok(b),
            _ => Err(self.type_err(label, node, "a boolean (true or false)")),
        }
    }

    fn duration(&self, label: &str, node: &Node) -> Result<u64> {
        let s = match &node.kind {
            Kind::String(s) => s,
            _ => {
                return Err(self.type_err(
                    label,
                    node,
                    "a duration string such as \"15m\" (in quotes)",
                ));
            }
        };
        parse_duration(s).map_err(|why| self.err(node.span.start, format!("`{label}`: {why}")))
    }

    /// Rejects keys not in `valid`, suggesting the nearest valid one.
    fn check_keys(&self, entries: &[Entry], valid: &[&str], place: Place) -> Result<()> {
        for entry in entries {
            if valid.contains(&entry.key.as_str()) {
                continue;
            }
            let key = &entry.key;
            let mut message = format!("unknown key `{key}` {}", place.phrase());
            if let Some(near) = suggest(key, valid) {
                message.push_str(&format!("; did you mean `{near}`?"));
            } else if let Some(home) = matches!(place, Place::Top)
                .then(|| section_of(key))
                .flatten()
            {
                message.push_str(&format!("; `{key}` belongs in {home}"));
            } else {
                let list: Vec<String> = valid.iter().map(|k| format!("`{k}`")).collect();
                message.push_str(&format!("; valid keys are {}", list.join(", ")));
            }
            return Err(self.err(entry.key_span.start, message));
        }
        Ok(())
    }

    fn policy(&self, source: &str) -> Result<Policy> {
        let Kind::Table(top) = &self.root.kind else {
            return Err(self.err(
                self.root.span.start,
                format!(
                    "the policy must be {} with the keys `environment`, `audit`, `approval`, `fleet` and `rule`, found {}",
                    match self.format {
                        Format::Toml => "a TOML document",
                        Format::Json => "a JSON object",
                    },
                    self.root.describe(self.format)
                ),
            ));
        };
        self.check_keys(top, TOP_KEYS, Place::Top)?;
        let mut policy = Policy {
            source: source.to_string(),
            provenance: Vec::new(),
            keys_set: keys_set(top),
            anchored: false,
            environment: EnvironmentConfig::default(),
            audit: AuditConfig::default(),
            approval: ApprovalConfig::default(),
            fleet: FleetConfig::default(),
            promotion: PromotionConfig::default(),
            sql: SqlConfig::default(),
            targets: Vec::new(),
            rules: Vec::new(),
        };
        for entry in top {
            match entry.key.as_str() {
                "environment" => policy.environment = self.environment(&entry.value)?,
                "audit" => policy.audit = self.audit(&entry.value)?,
                "approval" => policy.approval = self.approval(&entry.value)?,
                "fleet" => policy.fleet = self.fleet(&entry.value)?,
                "promotion" => policy.promotion = self.promotion(&entry.value)?,
                "sql" => policy.sql = self.sql(&entry.value)?,
                "targets" => policy.targets = self.targets(&entry.value)?,
                _ => policy.rules = self.rules(&entry.value)?,
            }
        }
        if policy.rules.is_empty() {
            // A file without rules would silently guard nothing, production included.
            return Err(self.err(
                0,
                "the policy has no [[rule]], so nothing would be guarded, not even in production; \
                 add rules (start from `prodguard policy show --default`)"
                    .to_string(),
            ));
        }
        Ok(policy)
    }

    fn environment(&self, node: &Node) -> Result<EnvironmentConfig> {
        let entries = self.table("environment", node)?;
        self.check_keys(entries, ENVIRONMENT_KEYS, Place::Environment)?;
        let mut config = EnvironmentConfig::default();
        for Entry { key, value, .. } in entries {
            match key.as_str() {
                "unknown" => {
                    let s = self.string("unknown", value)?;
                    config.unknown = if s.trim().eq_ignore_ascii_case("protected") {
                        UnknownEnvironment::Protected
                    } else if let Some(tier) = Tier::from_name(s) {
                        UnknownEnvironment::Tier(tier)
                    } else {
                        return Err(self.err(
                            value.span.start,
                            format!(
                                "`unknown` must be \"protected\" (guard an undeclared environment like production) or a tier name: {TIER_EXPECTED}; found {s:?}"
                            ),
                        ));
                    };
                }
                "marker_file" => config.marker_file = self.text("marker_file", value)?,
                "aliases" => config.aliases = self.aliases(value)?,
                _ => config.hostnames = self.hostnames(value)?,
            }
        }
        Ok(config)
    }

    /// A tier name (canonical or built-in alias) in `value`.
    fn tier(&self, label: &str, value: &Node) -> Result<Tier> {
        let s = self.string(label, value)?;
        Tier::from_name(s).ok_or_else(|| {
            let mut message = format!("unknown tier {s:?} in `{label}`; expected {TIER_EXPECTED}");
            if let Some(near) = suggest(&s.trim().to_ascii_lowercase(), TIER_NAMES) {
                message.push_str(&format!("; did you mean `{near}`?"));
            }
            self.err(value.span.start, message)
        })
    }

    fn aliases(&self, node: &Node) -> Result<BTreeMap<String, Tier>> {
        let entries = self.table("aliases", node)?;
        let mut aliases = BTreeMap::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for entry in entries {
            let name = entry.key.trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(self.err(
                    entry.key_span.start,
                    "an alias name in `aliases` must not be empty; write the environment's name, e.g. \"prod-eu\" = \"production\"",
                ));
            }
            if let Some(first) = seen.get(&name) {
                return Err(self.err(
                    entry.key_span.start,
                    format!(
                        "alias `{}` in `aliases` is the same name as `{first}` (names are trimmed and case-folded); keep only one",
                        entry.key
                    ),
                ));
            }
            let tier = self.tier(&format!("aliases.{}", entry.key), &entry.value)?;
            if let Some(builtin) = Tier::from_name(&name)
                && builtin != tier
            {
                return Err(self.err(
                    entry.value.span.start,
                    format!(
                        "alias `{name}` is a built-in name for {builtin}; it cannot be mapped to {tier}: rename the environment or map it to {builtin}"
                    ),
                ));
            }
            seen.insert(name.clone(), &entry.key);
            aliases.insert(name, tier);
        }
        Ok(aliases)
    }

    fn hostnames(&self, node: &Node) -> Result<Vec<HostnameHint>> {
        let entries = self.table("hostnames", node)?;
        let mut hints: Vec<HostnameHint> = Vec::new();
        for entry in entries {
            let pattern = &entry.key;
            let valid = !pattern.is_empty()
                && pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '?'));
            if !valid {
                return Err(self.err(
                    entry.key_span.start,
                    format!(
                        "invalid host name pattern {pattern:?} in `hostnames`; expected letters, digits, `.`, `-`, `_` and the wildcards `*` (any run) and `?` (one character), e.g. \"*-prod-*\" = \"production\""
                    ),
                ));
            }
            if hints
                .iter()
                .any(|h| h.pattern.eq_ignore_ascii_case(pattern))
            {
                return Err(self.err(
                    entry.key_span.start,
                    format!(
                        "host name pattern `{pattern}` appears twice in `hostnames` (host names are matched without regard to case); keep only one"
                    ),
                ));
            }
            let tier = self.tier(&format!("hostnames.{pattern}"), &entry.value)?;
            hints.push(HostnameHint {
                pattern: pattern.clone(),
                tier,
            });
        }
        Ok(hints)
    }

    /// `[targets]`: patterns over normalised targets, each with a tier.
    fn targets(&self, node: &Node) -> Result<Vec<TargetTier>> {
        let entries = self.table("targets", node)?;
        let mut targets: Vec<TargetTier> = Vec::new();
        for entry in entries {
            let pattern = &entry.key;
            let valid = !pattern.is_empty()
                && pattern.len() <= 512
                && pattern.chars().all(|c| c.is_ascii_graphic());
            if !valid {
                return Err(self.err(
                    entry.key_span.start,
                    format!(
                        "invalid target pattern {pattern:?} in [targets]; expected at most 512 \
                         printable ASCII characters without spaces, with the wildcards `*` (any \
                         run) and `?` (one character), e.g. \"postgresql://*.prod.internal/*\" = \
                         \"production\", \"kube:prod-*\", \"sqlite:/srv/app/*.db\", \"terraform:prod\""
                    ),
                ));
            }
            if targets.iter().any(|t| &t.pattern == pattern) {
                return Err(self.err(
                    entry.key_span.start,
                    format!("target pattern `{pattern}` appears twice in [targets]; keep only one"),
                ));
            }
            let tier = self.tier(&format!("targets.{pattern}"), &entry.value)?;
            targets.push(TargetTier {
                pattern: pattern.clone(),
                tier,
            });
        }
        Ok(targets)
    }

    fn audit(&self, node: &Node) -> Result<AuditConfig> {
        let entries = self.table("audit", node)?;
        self.check_keys(entries, AUDIT_KEYS, Place::Audit)?;
        let mut config = AuditConfig::default();
        for Entry { key, value, .. } in entries {
            match key.as_str() {
                "log" => config.log = Some(self.text("log", value)?),
                "durability" => {
                    config.durability = match self.string("durability", value)? {
                        "fdatasync" => Durability::Fdatasync,
                        "none" => Durability::None,
                        other => {
                            return Err(self.err(
                                value.span.start,
                                format!(
                                    "`durability` must be \"fdatasync\" (the default: each record is on disk before the operation runs) or \"none\" (only for tests), found {other:?}"
                                ),
                            ));
                        }
                    }
                }
                "seal_every" => config.seal_every = Some(self.positive("seal_every", value)?),
                "rotate_bytes" => {
                    config.rotate_bytes = Some(self.positive("rotate_bytes", value)?);
                }
                "sink" => config.sink = Some(self.postgres_url("sink", value)?),
                _ => config.seal_key_file = Some(self.text("seal_key_file", value)?),
            }
        }
        Ok(config)
    }

    /// A row count: an integer, 0 or more.
    fn rows(&self, label: &str, node: &Node) -> Result<u64> {
        match node.kind {
            Kind::Integer(Some(n)) => u64::try_from(n).map_err(|_| {
                self.err(
                    node.span.start,
                    format!("`{label}` must be a number of rows, 0 or more, found {n}"),
                )
            }),
            _ => Err(self.type_err(label, node, "a number of rows (0 or more)")),
        }
    }

    fn positive(&self, label: &str, node: &Node) -> Result<u64> {
        match node.kind {
            Kind::Integer(Some(n)) if n > 0 => u64::try_from(n).map_err(|_| {
                self.err(
                    node.span.start,
                    format!(
                        "`{label}` is too large; the largest accepted value is {}",
                        u64::MAX
                    ),
                )
            }),
            Kind::Integer(Some(n)) => Err(self.err(
                node.span.start,
                format!("`{label}` must be a positive integer (1 or more), found {n}"),
            )),
            Kind::Integer(None) => Err(self.err(
                node.span.start,
                format!(
                    "`{label}` is too large; the largest accepted value is {}",
                    u64::MAX
                ),
            )),
            _ => Err(self.type_err(label, node, "a positive integer")),
        }
    }

    fn approval(&self, node: &Node) -> Result<ApprovalConfig> {
        let entries = self.table("approval", node)?;
        if let Some(entry) = entries.iter().find(|e| e.key == "key_file") {
            return Err(self.err(
                entry.key_span.start,
                "`key_file` is no longer supported: prodguard 0.2 replaced the HMAC shared key \
                 (whoever could verify a token could also mint one) with approvers' own keys; \
                 remove it and list each approver's public key instead, as `approvers = { NAME = { key = \"ed25519:…\", user = \"OS_ACCOUNT\" } }` \
                 (`prodguard keygen --approver NAME --out FILE` makes a key pair and prints the line)",
            ));
        }
        self.check_keys(entries, APPROVAL_KEYS, Place::Approval)?;
        let mut config = ApprovalConfig::default();
        for Entry { key, value, .. } in entries {
            match key.as_str() {
                "approvers" => config.approvers = self.approvers(value)?,
                "max_ttl" => config.max_ttl_seconds = self.duration("max_ttl", value)?,
                "ledger" => config.ledger = Some(self.postgres_url("ledger", value)?),
                "break_glass_users" => config.break_glass_users = self.accounts(value)?,
                _ => config.four_eyes = self.bool("four_eyes", value)?,
            }
        }
        Ok(config)
    }

    /// `break_glass_users`: OS account names, each once. An empty list is
    /// allowed (nobody may), so a policy can say so explicitly.
    fn accounts(&self, node: &Node) -> Result<Vec<String>> {
        const LABEL: &str = "break_glass_users";
        let items = self.array(LABEL, node, "OS account names")?;
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let name = match &item.kind {
                Kind::String(s) => s,
                _ => {
                    return Err(self.type_err(
                        LABEL,
                        item,
                        "an array of strings (OS account names such as \"alice\")",
                    ));
                }
            };
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self.err(
                    item.span.start,
                    format!(
                        "{name:?} in `{LABEL}` is not an OS account name; give the account's \
                         login name (no spaces), e.g. \"alice\""
                    ),
                ));
            }
            if out.contains(name) {
                return Err(self.err(
                    item.span.start,
                    format!("\"{name}\" is listed twice in `{LABEL}`; list each account once"),
                ));
            }
            out.push(name.clone());
        }
        Ok(out)
    }

    fn approvers(&self, node: &Node) -> Result<BTreeMap<String, Approver>> {
        let entries = self.table("approvers", node)?;
        let mut approvers = BTreeMap::new();
        for entry in entries {
            let name = &entry.key;
            if let Err(why) = crate::approval::validate_approver_name(name) {
                return Err(self.err(entry.key_span.start, format!("in `approvers`: {why}")));
            }
            let fields = self.table(&format!("approvers.{name}"), &entry.value)?;
            self.check_keys(fields, APPROVER_KEYS, Place::Approver)?;
            let missing = |field: &str| {
                self.err(
                    entry.value.span.start,
                    format!(
                        "approver `{name}` has no `{field}`; write {name} = {{ key = \"ed25519:…\", user = \"OS_ACCOUNT\" }} (`prodguard keygen --approver {name} --out FILE` prints it)"
                    ),
                )
            };
            let (mut key, mut user) = (None, None);
            for Entry {
                key: field, value, ..
            } in fields
            {
                if field == "key" {
                    let text = self.string(&format!("approvers.{name}.key"), value)?;
                    let parsed = crate::approval::parse_public_key(text).map_err(|why| {
                        self.err(
                            value.span.start,
                            format!(
                                "`approvers.{name}.key` is not an approver's public key: {why}; expected \"ed25519:\" and the base64 of 32 bytes, as `prodguard keygen --approver {name} --out FILE` prints it"
                            ),
                        )
                    })?;
                    key = Some(parsed);
                } else {
                    let text = self.text(&format!("approvers.{name}.user"), value)?;
                    if text.trim() != text {
                        return Err(self.err(
                            value.span.start,
                            format!(
                                "`approvers.{name}.user` is padded with whitespace; write the OS account's name exactly, e.g. \"{}\"",
                                text.trim()
                            ),
                        ));
                    }
                    user = Some(text);
                }
            }
            approvers.insert(
                name.clone(),
                Approver {
                    key: key.ok_or_else(|| missing("key"))?,
                    user: user.ok_or_else(|| missing("user"))?,
                },
            );
        }
        Ok(approvers)
    }

    fn sql(&self, node: &Node) -> Result<SqlConfig> {
        let entries = self.table("sql", node)?;
        self.check_keys(entries, SQL_KEYS, Place::Sql)?;
        let mut config = SqlConfig::default();
        for Entry { key, value, .. } in entries {
            let seconds = self.duration(key, value)?;
            if key == "statement_timeout" {
                config.statement_timeout_seconds = seconds;
            } else {
                config.lock_timeout_seconds = seconds;
            }
        }
        Ok(config)
    }

    fn fleet(&self, node: &Node) -> Result<FleetConfig> {
        let entries = self.table("fleet", node)?;
        self.check_keys(entries, FLEET_KEYS, Place::Fleet)?;
        let mut config = FleetConfig::default();
        for Entry { key, value, .. } in entries {
            match key.as_str() {
                "lock" => config.lock = Some(self.postgres_url("lock", value)?),
                _ => {
                    // "0" is the natural way to say "never wait".
                    config.wait_seconds = match &value.kind {
                        Kind::String(s) if s == "0" => 0,
                        _ => self.duration("wait", value)?,
                    }
                }
            }
        }
        if config.wait_seconds > 0 && config.lock.is_none() {
            let at = entries
                .iter()
                .find(|e| e.key == "wait")
                .map_or(node.span.start, |e| e.value.span.start);
            return Err(self.err(
                at,
                "`wait` says how long to wait for a fleet lock, but [fleet] names no `lock`; \
                 add lock = \"postgresql://…\" or remove `wait`",
            ));
        }
        Ok(config)
    }

    fn promotion(&self, node: &Node) -> Result<PromotionConfig> {
        let entries = self.table("promotion", node)?;
        self.check_keys(entries, PROMOTION_KEYS, Place::Promotion)?;
        let mut config = PromotionConfig::default();
        for Entry { key, value, .. } in entries {
            match key.as_str() {
                "from" => config.from = Some(self.text("from", value)?),
                "within" => config.within_seconds = self.duration("within", value)?,
                _ => {
                    config.staging_log = Some(match &value.kind {
                        Kind::String(s) if super::is_postgres_url(s) => {
                            self.postgres_url("staging_log", value)?
                        }
                        _ => self.text("staging_log", value)?,
                    })
                }
            }
        }
        Ok(config)
    }

    /// A fleet-mode server: a `postgresql://` URL (the only engine there is).
    fn postgres_url(&self, label: &str, node: &Node) -> Result<String> {
        let url = self.text(label, node)?;
        if !POSTGRES_URL_SCHEMES.iter().any(|s| url.starts_with(s)) {
            // Not echoed: a mistyped URL may still hold a password.
            return Err(self.err(
                node.span.start,
                format!(
                    "`{label}` must be a PostgreSQL URL such as \"postgresql://prodguard@db.internal/fleet\" \
                     (fleet mode keeps its state in PostgreSQL)"
                ),
            ));
        }
        if crate::secret::has_password(&url) {
            return Err(self.err(
                node.span.start,
                format!(
                    "`{label}` holds a password; policies are shared and shown, passwords are not: \
                     remove it from the URL and give it in PGPASSWORD or ~/.pgpass"
                ),
            ));
        }
        Ok(url)
    }

    fn rules(&self, node: &Node) -> Result<Vec<Rule>> {
        let Kind::Array(items) = &node.kind else {
            let hint = match self.format {
                Format::Toml => "write each rule under its own [[rule]] header",
                Format::Json => "write \"rule\": [ { … }, { … } ]",
            };
            return Err(self.type_err("rule", node, &format!("an array of rules ({hint})")));
        };
        let mut rules: Vec<Rule> = Vec::with_capacity(items.len());
        // Explicit names seen so far, with their line, to refuse duplicates.
        let mut names: BTreeMap<String, u32> = BTreeMap::new();
        for (index, item) in items.iter().enumerate() {
            let rule = self.rule(index + 1, item, &mut names)?;
            rules.push(rule);
        }
        Ok(rules)
    }

    fn rule(&self, number: usize, node: &Node, names: &mut BTreeMap<String, u32>) -> Result<Rule> {
        let Kind::Table(entries) = &node.kind else {
            return Err(self.err(
                node.span.start,
                format!(
                    "each rule must be {}, found {}",
                    self.table_word(),
                    node.describe(self.format)
                ),
            ));
        };
        self.check_keys(entries, RULE_KEYS, Place::Rule)?;
        let (line, _) = self.loc.position(node.span.start);
        let get = |key: &str| entries.iter().find(|e| e.key == key);

        let name = match get("name") {
            Some(entry) => {
                let name = self.text("name", &entry.value)?;
                if let Some(first) = names.get(&name) {
                    return Err(self.err(
                        entry.value.span.start,
                        format!(
                            "rule name {name:?} is already used by the rule at line {first}; rule names must be unique (they appear in refusals and in the audit log)"
                        ),
                    ));
                }
                names.insert(name.clone(), line);
                name
            }
            None => format!("rule #{number} (line {line})"),
        };
        // How messages refer to the rule: `rule "migrations"` or `rule #2 (line 7)`.
        let label = if get("name").is_some() {
            format!("rule {name:?}")
        } else {
            name.clone()
        };

        let operations = match get("operations") {
            Some(entry) => self.operations(&entry.value)?,
            None => {
                return Err(self.err(
                    node.span.start,
                    format!(
                        "{label} has no `operations`; add operations = [\"db.migrate\", \"db.delete.*\"] (globs over dotted operation names; \"*\" for every operation)"
                    ),
                ));
            }
        };

        let tiers = match get("tiers") {
            Some(entry) => self.rule_tiers(&entry.value)?,
            None => Vec::new(),
        };

        let require_entry = get("require");
        let require = match require_entry {
            Some(entry) => self.require(&entry.value)?,
            None => Vec::new(),
        };

        let deny_entry = get("deny");
        let deny = match deny_entry {
            Some(entry) => {
                let s = self.string("deny", &entry.value)?;
                if s.trim().is_empty() {
                    return Err(self.err(
                        entry.value.span.start,
                        "`deny` must not be empty; say why the operation is refused, e.g. deny = \"dropping a production database is never done by an application\"",
                    ));
                }
                Some(s.to_string())
            }
            None => None,
        };

        match (require_entry, deny_entry) {
            (None, None) => {
                return Err(self.err(
                    node.span.start,
                    format!(
                        "{label} has neither `require` nor `deny`; add require = [\"confirm\", \"backup\", \"audit\"] (what must happen before the operation runs) or deny = \"why\" (it never runs)"
                    ),
                ));
            }
            (Some(_), Some(deny)) => {
                return Err(self.err(
                    deny.key_span.start,
                    format!(
                        "{label} has both `require` and `deny`; a rule either refuses the operation or names what it requires: split it into two rules"
                    ),
                ));
            }
            _ => {}
        }

        let confirm_mode = match get("confirm") {
            Some(entry) => {
                if !require.contains(&Requirement::Confirm) {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`confirm` has no effect in {label} because its `require` does not list \"confirm\"; add \"confirm\" to `require` or remove `confirm`"
                        ),
                    ));
                }
                self.confirm(&entry.value)?
            }
            None => ConfirmMode::Either,
        };

        let backup = match get("backup") {
            Some(entry) => {
                if !require.contains(&Requirement::Backup) {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`backup` has no effect in {label} because its `require` does not list \"backup\"; add \"backup\" to `require` or remove `backup`"
                        ),
                    ));
                }
                self.backup(&entry.value, &label)?
            }
            None => None,
        };

        if require.contains(&Requirement::Backup) && backup.is_none() {
            let at = require_entry
                .and_then(|e| match &e.value.kind {
                    Kind::Array(items) => items
                        .iter()
                        .find(|n| matches!(&n.kind, Kind::String(s) if s == "backup"))
                        .map(|n| n.span.start),
                    _ => None,
                })
                .unwrap_or(node.span.start);
            return Err(self.err(
                at,
                format!(
                    "`require` lists \"backup\" but {label} does not say how to get one; add backup = {{ command = \"pg_dump -Fc -f {{path}}\", verify = \"pg_restore --list {{path}}\" }} to make a backup before the operation, backup = {{ path = \"/backups/db.dump\", max_age = \"1h\" }} to accept a recent existing file, or backup = {{ provider = \"program\" }} when the program supplies its own backup"
                ),
            ));
        }

        let actors = match get("actors") {
            Some(entry) => {
                if deny.is_some() {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`actors` has no effect in {label} because it denies the operation to everyone; remove `actors`, or use `require` with `actors` to say who may act"
                        ),
                    ));
                }
                self.actors(&entry.value)?
            }
            None => Vec::new(),
        };

        let break_glass = match get("break_glass") {
            Some(entry) => {
                if deny.is_some() {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`break_glass` has no effect in {label}: break-glass never overrides a deny rule"
                        ),
                    ));
                }
                self.bool("break_glass", &entry.value)?
            }
            None => false,
        };

        let max_rows = match get("max_rows") {
            Some(entry) => {
                if deny.is_some() {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`max_rows` has no effect in {label}: it denies the operation whatever the rows; remove `max_rows`, or use `require` with `max_rows` to bound the rows"
                        ),
                    ));
                }
                Some(self.rows("max_rows", &entry.value)?)
            }
            None => None,
        };
        let confirm_above_rows = match get("confirm_above_rows") {
            Some(entry) => {
                if !require.contains(&Requirement::Confirm) {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`confirm_above_rows` has no effect in {label} because its `require` does not list \"confirm\"; add \"confirm\" to `require` or remove `confirm_above_rows`"
                        ),
                    ));
                }
                Some(self.rows("confirm_above_rows", &entry.value)?)
            }
            None => None,
        };

        let outside_transaction = match get("outside_transaction") {
            Some(entry) => {
                if deny.is_some() {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`outside_transaction` has no effect in {label}: a deny rule refuses the statement anyway"
                        ),
                    ));
                }
                self.bool("outside_transaction", &entry.value)?
            }
            None => false,
        };

        let agent_deny = match get("agent") {
            Some(entry) => {
                if deny.is_some() {
                    return Err(self.err(
                        entry.key_span.start,
                        format!(
                            "`agent` has no effect in {label}: a deny rule denies an agent's command anyway"
                        ),
                    ));
                }
                match self.string("agent", &entry.value)?.trim() {
                    "deny" => true,
                    "ask" => false,
                    other => {
                        return Err(self.err(
                            entry.value.span.start,
                            format!(
                                "`agent` must be \"ask\" (the hook asks a person in the agent's \
                                 UI) or \"deny\" (it refuses the agent's command), found {other:?}"
                            ),
                        ));
                    }
                }
            }
            None => false,
        };

        Ok(Rule {
            name,
            operations,
            tiers,
            require,
            confirm_mode,
            backup,
            deny,
            actors,
            break_glass,
            max_rows,
            confirm_above_rows,
            outside_transaction,
            agent_deny,
        })
    }

    fn operations(&self, node: &Node) -> Result<Vec<String>> {
        let items = self.array("operations", node, "operation globs")?;
        if items.is_empty() {
            return Err(self.err(
                node.span.start,
                "`operations` must list at least one operation glob, e.g. [\"db.migrate\", \"db.delete.*\"] (\"*\" for every operation)",
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let glob = match &item.kind {
                Kind::String(s) => s,
                _ => {
                    return Err(self.type_err(
                        "operations",
                        item,
                        "an array of strings (operation globs such as \"db.migrate\")",
                    ));
                }
            };
            if let Err(why) = validate_operation_glob(glob) {
                return Err(self.err(
                    item.span.start,
                    format!("invalid entry in `operations`: {why}"),
                ));
            }
            if out.contains(glob) {
                return Err(self.err(
                    item.span.start,
                    format!("`{glob}` is listed twice in `operations`; list it once"),
                ));
            }
            out.push(glob.clone());
        }
        Ok(out)
    }

    fn rule_tiers(&self, node: &Node) -> Result<Vec<Tier>> {
        let items = self.array("tiers", node, "tier names")?;
        let mut out: Vec<Tier> = Vec::with_capacity(items.len());
        for item in items {
            let s = match &item.kind {
                Kind::String(s) => s,
                _ => return Err(self.type_err("tiers", item, "an array of tier names (strings)")),
            };
            let tier = match Tier::from_name(s) {
                Some(tier) => tier,
                None => {
                    let folded = s.trim().to_ascii_lowercase();
                    let mut message =
                        format!("unknown tier {s:?} in `tiers`; expected {TIER_EXPECTED}");
                    if let Some(mapped) = self.policy_alias(&folded) {
                        message = format!(
                            "{s:?} in `tiers` is an environment name ([environment] aliases maps it to {mapped}); rules name tiers: write \"{mapped}\""
                        );
                    } else if let Some(near) = suggest(&folded, TIER_NAMES) {
                        message.push_str(&format!("; did you mean `{near}`?"));
                    }
                    return Err(self.err(item.span.start, message));
                }
            };
            if out.contains(&tier) {
                return Err(self.err(
                    item.span.start,
                    format!("{s:?} in `tiers` repeats the tier {tier}; list each tier once"),
                ));
            }
            out.push(tier);
        }
        Ok(out)
    }

    /// What the document's `[environment] aliases` maps `folded` to, if
    /// anything (read straight from the tree, whatever the section order).
    fn policy_alias(&self, folded: &str) -> Option<String> {
        let Kind::Table(top) = &self.root.kind else {
            return None;
        };
        let env = top.iter().find(|e| e.key == "environment")?;
        let Kind::Table(env) = &env.value.kind else {
            return None;
        };
        let aliases = env.iter().find(|e| e.key == "aliases")?;
        let Kind::Table(aliases) = &aliases.value.kind else {
            return None;
        };
        aliases
            .iter()
            .find(|e| e.key.trim().to_ascii_lowercase() == folded)
            .and_then(|e| match &e.value.kind {
                Kind::String(s) => Tier::from_name(s).map(|t| t.as_str().to_string()),
                _ => None,
            })
    }

    fn require(&self, node: &Node) -> Result<Vec<Requirement>> {
        const EXPECTED: &str = "\"confirm\", \"backup\", \"audit\", \"staged\" or \"rollback\"";
        let items = self.array("require", node, "requirements")?;
        if items.is_empty() {
            return Err(self.err(
                node.span.start,
                format!(
                    "`require` must list at least one of {EXPECTED}; to refuse the operation use deny = \"why\" instead"
                ),
            ));
        }
        let mut out: Vec<Requirement> = Vec::with_capacity(items.len());
        for item in items {
            let s = match &item.kind {
                Kind::String(s) => s.as_str(),
                _ => {
                    return Err(self.type_err(
                        "require",
                        item,
                        &format!("an array of requirement names ({EXPECTED})"),
                    ));
                }
            };
            let requirement = match s {
                "confirm" => Requirement::Confirm,
                "backup" => Requirement::Backup,
                "audit" => Requirement::Audit,
                "staged" => Requirement::Staged,
                "rollback" => Requirement::Rollback,
                other => {
                    let mut message =
                        format!("unknown requirement {other:?} in `require`; expected {EXPECTED}");
                    if other == "deny" {
                        message.push_str(
                            "; to refuse the operation write deny = \"why\" instead of `require`",
                        );
                    } else if let Some(near) =
                        suggest(other, &["confirm", "backup", "audit", "staged", "rollback"])
                    {
                        message.push_str(&format!("; did you mean `{near}`?"));
                    }
                    return Err(self.err(item.span.start, message));
                }
            };
            if out.contains(&requirement) {
                return Err(self.err(
                    item.span.start,
                    format!("\"{s}\" is listed twice in `require`; list each requirement once"),
                ));
            }
            out.push(requirement);
        }
        out.sort();
        Ok(out)
    }

    fn confirm(&self, node: &Node) -> Result<ConfirmMode> {
        let entries = self.table("confirm", node)?;
        self.check_keys(entries, CONFIRM_KEYS, Place::Confirm)?;
        let mut mode = ConfirmMode::Either;
        for Entry { value, .. } in entries {
            mode = match self.string("confirm.mode", value)? {
                "typed" => ConfirmMode::Typed,
                "approval" => ConfirmMode::Approval,
                "either" => ConfirmMode::Either,
                "both" => ConfirmMode::Both,
                other => {
                    return Err(self.err(
                        value.span.start,
                        format!(
                            "`confirm.mode` must be \"typed\" (at a terminal), \"approval\" (a pre-issued token), \"either\" or \"both\" (a token and typing), found {other:?}"
                        ),
                    ));
                }
            };
        }
        Ok(mode)
    }

    /// `backup = { … }`: `Ok(None)` when the provider lacks what it needs
    /// to get a backup (the caller says how to give it one).
    fn backup(&self, node: &Node, label: &str) -> Result<Option<BackupSpec>> {
        let entries = self.table("backup", node)?;
        self.check_keys(entries, BACKUP_KEYS, Place::Backup)?;
        let get = |name: &str| entries.iter().find(|e| e.key == name);
        let source = match get("provider") {
            Some(Entry { value, .. }) => {
                let name = self.text("backup.provider", value)?;
                match name.as_str() {
                    "command" => BackupSource::Command,
                    "recent" => BackupSource::Recent,
                    "program" => BackupSource::Program,
                    "sqlite" => BackupSource::Sqlite,
                    other => {
                        return Err(self.err(
                            value.span.start,
                            format!(
                                "`backup.provider` must be \"command\", \"recent\", \"sqlite\" or \"program\", found \"{other}\""
                            ),
                        ));
                    }
                }
            }
            None if get("command").is_some() => BackupSource::Command,
            None => BackupSource::Recent,
        };
        let takes = BackupSpec::keys(source);
        if let Some(foreign) = entries.iter().find(|e| !takes.contains(&e.key.as_str())) {
            let keys = takes
                .iter()
                .filter(|k| **k != "provider")
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(self.err(
                foreign.key_span.start,
                format!(
                    "`backup.{}` does not apply to provider = \"{}\" in {label}; that provider takes only {keys}: remove `{}` or choose the provider that uses it",
                    foreign.key,
                    source.as_str(),
                    foreign.key
                ),
            ));
        }
        let text = |key: &str| -> Result<Option<String>> {
            get(key)
                .map(|e| self.text(&format!("backup.{key}"), &e.value))
                .transpose()
        };
        let max_age = get("max_age")
            .map(|e| self.duration("backup.max_age", &e.value))
            .transpose()?;
        let (command, verify, path) = (text("command")?, text("verify")?, text("path")?);
        Ok(match source {
            BackupSource::Command => {
                let Some(command) = command else {
                    return Ok(None);
                };
                let Some(verify) = verify else {
                    let at = get("command").map_or(node.span.start, |e| e.key_span.start);
                    return Err(self.err(
                        at,
                        format!(
                            "`backup.command` in {label} has no `verify`; a backup nobody checked is not evidence that a restore would work: add verify = \"…\", a command that exits 0 only for a good copy (e.g. verify = \"pg_restore --list {{path}}\" after pg_dump, verify = \"test \\\"$(sqlite3 {{path}} 'PRAGMA integrity_check')\\\" = ok\" for SQLite)"
                        ),
                    ));
                };
                Some(BackupSpec::Command {
                    command,
                    verify,
                    path,
                    max_age_seconds: max_age,
                })
            }
            BackupSource::Recent => match (path, max_age) {
                (Some(path), Some(max_age_seconds)) => Some(BackupSpec::Recent {
                    path,
                    max_age_seconds,
                    verify,
                }),
                _ => None,
            },
            BackupSource::Sqlite => Some(BackupSpec::Sqlite { path }),
            BackupSource::Program => Some(BackupSpec::Program {
                max_age_seconds: max_age,
            }),
        })
    }

    fn actors(&self, node: &Node) -> Result<Vec<ActorKind>> {
        const EXPECTED: &str = "\"human\", \"ci\", \"agent\" or \"service\"";
        let items = self.array("actors", node, "actor kinds")?;
        if items.is_empty() {
            return Err(self.err(
                node.span.start,
                format!(
                    "`actors` must list at least one of {EXPECTED}; remove `actors` to let anyone act"
                ),
            ));
        }
        let mut out: Vec<ActorKind> = Vec::with_capacity(items.len());
        for item in items {
            let s = match &item.kind {
                Kind::String(s) => s.as_str(),
                _ => {
                    return Err(self.type_err(
                        "actors",
                        item,
                        &format!("an array of actor kinds ({EXPECTED})"),
                    ));
                }
            };
            let actor = match s {
                "human" => ActorKind::Human,
                "ci" => ActorKind::Ci,
                "agent" => ActorKind::Agent,
                "service" => ActorKind::Service,
                other => {
                    let mut message =
                        format!("unknown actor kind {other:?} in `actors`; expected {EXPECTED}");
                    if let Some(near) = suggest(other, &["human", "ci", "agent", "service"]) {
                        message.push_str(&format!("; did you mean `{near}`?"));
                    }
                    return Err(self.err(item.span.start, message));
                }
            };
            if out.contains(&actor) {
                return Err(self.err(
                    item.span.start,
                    format!("\"{s}\" is listed twice in `actors`; list each actor kind once"),
                ));
            }
            out.push(actor);
        }
        Ok(out)
    }
}

/// Which section a misplaced top-level key belongs to.
fn section_of(key: &str) -> Option<&'static str> {
    if ENVIRONMENT_KEYS.contains(&key) {
        Some("[environment]")
    } else if AUDIT_KEYS.contains(&key) {
        Some("[audit]")
    } else if APPROVAL_KEYS.contains(&key) {
        Some("[approval]")
    } else if FLEET_KEYS.contains(&key) {
        Some("[fleet]")
    } else if PROMOTION_KEYS.contains(&key) {
        Some("[promotion]")
    } else if SQL_KEYS.contains(&key) {
        Some("[sql]")
    } else if RULE_KEYS.contains(&key) {
        Some("[[rule]]")
    } else {
        None
    }
}

/// The candidate nearest to `word`: edit distance (with transpositions) of
/// at most 2, or one being a prefix of the other; `None` if none is near.
pub(crate) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'c str)> = None;
    for &candidate in candidates {
        let d = distance(&lower, candidate);
        let near = d <= 2 && d < candidate.chars().count();
        let prefix = lower.chars().count() >= 2
            && (candidate.starts_with(lower.as_str()) || lower.starts_with(candidate));
        if !(near || prefix) {
            continue;
        }
        // Prefix matches rank after close edits of the same distance.
        let score = if near { d * 2 } else { 5 };
        if best.is_none_or(|(s, _)| score < s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, cell) in d.iter_mut().step_by(width).enumerate() {
        *cell = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("requre", "require"), 1);
        assert_eq!(distance("reqiure", "require"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("requre", RULE_KEYS), Some("require"));
        assert_eq!(suggest("Require", RULE_KEYS), Some("require"));
        assert_eq!(suggest("rules", TOP_KEYS), Some("rule"));
        assert_eq!(suggest("operation", RULE_KEYS), Some("operations"));
        assert_eq!(suggest("ops", RULE_KEYS), None);
        assert_eq!(suggest("oper", RULE_KEYS), Some("operations"));
        assert_eq!(suggest("zzz", RULE_KEYS), None);
        assert_eq!(suggest("x", AUDIT_KEYS), None);
        assert_eq!(suggest("prodution", TIER_NAMES), Some("production"));
    }
}
