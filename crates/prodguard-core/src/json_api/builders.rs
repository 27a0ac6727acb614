//! Constructors for the JSON API's requests, for hosts that build them in
//! Rust (the wasmtime host re-exports these types).

use super::{Evidence, Request, RequestOperation, RequestSql, SessionStep, SessionVerdict};
use crate::Facts;
use crate::audit::Actor;
use crate::sql::Dialect;

impl Request {
    /// A dry run of an operation of `kind` with no facts (nothing declared:
    /// the environment is unknown, guarded like production) under the
    /// built-in default policy.
    ///
    /// ```
    /// use prodguard_core::json_api::Request;
    ///
    /// let request = Request::new("db.migrate").target("orders").explain();
    /// let json = serde_json::to_value(&request).unwrap();
    /// assert_eq!(json["operation"]["kind"], "db.migrate");
    /// assert_eq!(json["explain"], true);
    /// assert!(json.get("evidence").is_none());
    /// ```
    pub fn new(kind: impl Into<String>) -> Request {
        Request {
            facts: Facts::default(),
            policy: None,
            system_policy: None,
            operation: RequestOperation::new(kind),
            sql: None,
            evidence: None,
            now: None,
            explain: false,
            terminal: false,
        }
    }

    /// A dry run of an SQL script written in `dialect` (its operation and
    /// fingerprint are the script's), otherwise as [`Request::new`].
    ///
    /// ```
    /// use prodguard_core::json_api::{evaluate_json, Request};
    /// use prodguard_core::sql::Dialect;
    ///
    /// let request = Request::sql("DELETE FROM carts", Dialect::Postgres).target("shop");
    /// let answer = evaluate_json(&serde_json::to_string(&request).unwrap());
    /// let answer: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    /// assert_eq!(answer["sql"]["operation"], "db.delete.all");
    /// assert_eq!(answer["decision"]["exit_code"], 121);
    /// ```
    pub fn sql(script: impl Into<String>, dialect: Dialect) -> Request {
        Request {
            operation: RequestOperation::default(),
            sql: Some(RequestSql {
                script: script.into(),
                dialect,
            }),
            ..Request::new("")
        }
    }

    /// The operation acts on `target`.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Request {
        self.operation.target = Some(target.into());
        self
    }

    /// The operation's content fingerprint (approval tokens bind it).
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Request {
        self.operation.fingerprint = Some(fingerprint.into());
        self
    }

    /// Detection looks at `facts`.
    #[must_use]
    pub fn facts(mut self, facts: Facts) -> Request {
        self.facts = facts;
        self
    }

    /// Decide under this policy (TOML, the format of `prodguard.toml`).
    #[must_use]
    pub fn policy(mut self, toml: impl Into<String>) -> Request {
        self.policy = Some(toml.into());
        self
    }

    /// The system policy's text, which the host vouches for (read from a
    /// root-owned `/etc/prodguard/policy.toml`): [`policy`](Self::policy)
    /// is layered over it and can only tighten it.
    #[must_use]
    pub fn system_policy(mut self, toml: impl Into<String>) -> Request {
        self.system_policy = Some(toml.into());
        self
    }

    /// List every signal detection looked at in the answer, unset ones
    /// included.
    #[must_use]
    pub fn explain(mut self) -> Request {
        self.explain = true;
        self
    }

    /// Run the guard session with `evidence` at time `now` (RFC 3339).
    #[must_use]
    pub fn evidence(mut self, evidence: Evidence, now: impl Into<String>) -> Request {
        self.evidence = Some(evidence);
        self.now = Some(now.into());
        self
    }
}

impl RequestOperation {
    /// An operation of `kind` with no target and no fingerprint.
    ///
    /// ```
    /// let operation = prodguard_core::json_api::RequestOperation::new("db.migrate").target("orders");
    /// assert_eq!(operation.target.as_deref(), Some("orders"));
    /// ```
    pub fn new(kind: impl Into<String>) -> RequestOperation {
        RequestOperation {
            kind: Some(kind.into()),
            target: None,
            fingerprint: None,
            rollback: None,
        }
    }

    /// This operation acting on `target`.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> RequestOperation {
        self.target = Some(target.into());
        self
    }

    /// This operation with a content fingerprint (e.g. a migration's checksum).
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> RequestOperation {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// This operation with its way back: a command that undoes it.
    #[must_use]
    pub fn rollback(mut self, command: impl Into<String>) -> RequestOperation {
        self.rollback = Some(command.into());
        self
    }
}

impl Evidence {
    /// Evidence of `actor`'s attempt `attempt_id`, with nothing else given yet.
    ///
    /// ```
    /// use prodguard_core::json_api::Evidence;
    /// use prodguard_core::audit::Actor;
    /// use prodguard_core::policy::ActorKind;
    ///
    /// let mut evidence = Evidence::new(Actor { user: "alice".into(), kind: ActorKind::Human, account: None }, "attempt-1");
    /// evidence.typed = Some("orders".into());
    /// let json = serde_json::to_value(&evidence).unwrap();
    /// assert_eq!(json["typed"], "orders");
    /// assert!(json.get("backup").is_none());
    /// ```
    pub fn new(actor: Actor, attempt_id: impl Into<String>) -> Evidence {
        Evidence {
            actor,
            attempt_id: attempt_id.into(),
            audit_error: None,
            stamp: None,
            stamp_error: None,
            typed: None,
            approval: None,
            backup: None,
            backup_error: None,
            break_glass: None,
            fleet: false,
            dry_run_rows: None,
            promotion_trail: None,
            promotion_error: None,
        }
    }
}

impl SessionVerdict {
    /// Whether the session says to proceed (once `record` is durable).
    pub fn proceeds(&self) -> bool {
        self.step == SessionStep::Proceed
    }
}
