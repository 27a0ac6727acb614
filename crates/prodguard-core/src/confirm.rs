//! Confirmation resolution: how a [`Challenge`] may be answered, given the
//! rule's confirm mode, who is acting, the policy's four eyes and whether an
//! approval token was offered — one rule for every face (the Rust guard, the
//! JSON API the C ABI and the Wasm module speak).
//!
//! ```
//! use prodguard_core::confirm::{Route, Unconfirmable, route};
//! use prodguard_core::policy::{ActorKind, ConfirmMode};
//!
//! // Four eyes: the requester typing the name is one pair of eyes.
//! assert_eq!(
//!     route(ConfirmMode::Either, ActorKind::Human, true, false),
//!     Route::Unavailable(Unconfirmable::FourEyesNeedsToken)
//! );
//! assert_eq!(route(ConfirmMode::Either, ActorKind::Human, true, true), Route::CheckToken);
//! assert_eq!(route(ConfirmMode::Typed, ActorKind::Human, false, true), Route::AskPerson);
//! // An AI agent never confirms its own action by typing: a person approves it.
//! assert_eq!(
//!     route(ConfirmMode::Either, ActorKind::Agent, false, false),
//!     Route::Unavailable(Unconfirmable::AgentNeedsToken)
//! );
//! assert_eq!(route(ConfirmMode::Either, ActorKind::Agent, false, true), Route::CheckToken);
//! ```

use crate::audit::{Actor, ConfirmEvidence};
use crate::policy::{ActorKind, ConfirmMode};
use crate::session::{Challenge, ConfirmationAnswer};

/// How a confirmation challenge is to be answered.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Check the approval token that was offered (see
    /// [`crate::approval::verify`]); its verdict is the answer.
    CheckToken,
    /// Ask the person to type the expected name (see [`typed_answer`]).
    AskPerson,
    /// Check the token, then, when it confirms, ask the person too; the
    /// answer is the token's evidence with the method `approval+typed`
    /// (see [`both_answer`]).
    CheckTokenThenAskPerson,
    /// Nobody can confirm it this way; answer
    /// [`ConfirmationAnswer::Unavailable`] with the face's wording of why.
    Unavailable(Unconfirmable),
}

/// Why a challenge cannot be confirmed with what was offered.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unconfirmable {
    /// Four eyes needs someone else's approval token, but the rule accepts
    /// only a typed confirmation (`confirm.mode = "typed"`).
    FourEyesTypedOnly,
    /// Four eyes needs someone else's approval token, and none was offered.
    FourEyesNeedsToken,
    /// The rule accepts only an approval token, and none was offered.
    TokenRequired,
    /// The actor is an AI agent, which cannot confirm by typing (it can type
    /// into a terminal as well as a person can): a person must approve it
    /// with an approval token, and none was offered.
    AgentNeedsToken,
    /// The actor is an AI agent, which cannot confirm by typing, and the
    /// rule accepts only a typed confirmation (`confirm.mode = "typed"`):
    /// only a person running it at a terminal can.
    AgentTypedOnly,
}

/// How to answer a challenge in `mode`, for an actor of kind `actor`, under
/// `four_eyes`, when an approval token was (`token_offered`) or was not
/// offered.
///
/// A token is checked only where the mode accepts one; a typed answer is
/// asked for only where the mode accepts one, the actor is not an AI agent
/// and four eyes does not rule the requester's own answer out.
pub fn route(mode: ConfirmMode, actor: ActorKind, four_eyes: bool, token_offered: bool) -> Route {
    let agent = actor == ActorKind::Agent;
    match (mode, token_offered) {
        (ConfirmMode::Typed, _) if agent => Route::Unavailable(Unconfirmable::AgentTypedOnly),
        (ConfirmMode::Typed, _) if four_eyes => {
            Route::Unavailable(Unconfirmable::FourEyesTypedOnly)
        }
        (ConfirmMode::Typed, _) => Route::AskPerson,
        (ConfirmMode::Both, _) if agent => Route::Unavailable(Unconfirmable::AgentTypedOnly),
        (ConfirmMode::Both, true) => Route::CheckTokenThenAskPerson,
        (ConfirmMode::Both, false) => Route::Unavailable(Unconfirmable::TokenRequired),
        (ConfirmMode::Approval | ConfirmMode::Either, true) => Route::CheckToken,
        (ConfirmMode::Approval, false) => Route::Unavailable(Unconfirmable::TokenRequired),
        (ConfirmMode::Either, false) if agent => Route::Unavailable(Unconfirmable::AgentNeedsToken),
        (ConfirmMode::Either, false) if four_eyes => {
            Route::Unavailable(Unconfirmable::FourEyesNeedsToken)
        }
        (ConfirmMode::Either, false) => Route::AskPerson,
    }
}

/// The answer a person gave by typing `typed` for `challenge`: confirmed
/// when it is the expected name (surrounding whitespace ignored), declined
/// otherwise. `approver` is recorded as who confirmed (`None` leaves it to
/// the driver, which fills in the actor).
pub fn typed_answer(
    challenge: &Challenge,
    typed: &str,
    approver: Option<String>,
) -> ConfirmationAnswer {
    let typed = typed.trim();
    if typed == challenge.expected {
        ConfirmationAnswer::Confirmed(ConfirmEvidence {
            method: "typed".into(),
            approver,
            token_id: None,
            exp: None,
            max_rows: None,
        })
    } else {
        ConfirmationAnswer::Declined(format!(
            "typed `{}`, expected `{}`",
            crate::text::escape(typed),
            crate::text::escape(&challenge.expected)
        ))
    }
}

/// What a person's answer (the [`Route::AskPerson`] route, through the
/// terminal, a program's confirmer or a host's callback) may record: that
/// the acting account confirmed it, typed (or `callback`, a host's own
/// prompt; `scripted`, a test's script) — never a token, an expiry or
/// someone else, whatever the confirmer claims.
///
/// ```
/// use prodguard_core::audit::{Actor, ConfirmEvidence};
/// use prodguard_core::confirm::from_person;
/// use prodguard_core::policy::ActorKind;
/// use prodguard_core::session::ConfirmationAnswer;
///
/// let actor = Actor { user: "alice".into(), kind: ActorKind::Human, account: Some("carol".into()) };
/// let claimed = ConfirmEvidence { method: "approval".into(), approver: Some("alice".into()), token_id: Some("n".into()), exp: None, max_rows: None };
/// let ConfirmationAnswer::Confirmed(recorded) = from_person(ConfirmationAnswer::Confirmed(claimed), &actor) else { unreachable!() };
/// assert_eq!((recorded.method.as_str(), recorded.approver.as_deref(), recorded.token_id), ("typed", Some("carol"), None));
/// ```
pub fn from_person(answer: ConfirmationAnswer, actor: &Actor) -> ConfirmationAnswer {
    match answer {
        ConfirmationAnswer::Confirmed(claimed) => {
            // A weaker claim stands (a host's own prompt, a test's
            // script); anything else is what a person at a prompt does.
            let method = match claimed.method.as_str() {
                "callback" => "callback",
                "scripted" => "scripted",
                _ => "typed",
            };
            ConfirmationAnswer::Confirmed(ConfirmEvidence {
                method: method.into(),
                approver: Some(actor.account.clone().unwrap_or_else(|| actor.user.clone())),
                token_id: None,
                exp: None,
                max_rows: None,
            })
        }
        other => other,
    }
}

/// The answer to a [`Route::CheckTokenThenAskPerson`] challenge: the
/// token's verdict, and when it confirms, the person's (through
/// [`from_person`]); both must confirm.
pub fn both_answer(
    token: ConfirmationAnswer,
    person: impl FnOnce() -> ConfirmationAnswer,
) -> ConfirmationAnswer {
    let ConfirmationAnswer::Confirmed(mut evidence) = token else {
        return token;
    };
    match person() {
        ConfirmationAnswer::Confirmed(_) => {
            evidence.method = "approval+typed".into();
            ConfirmationAnswer::Confirmed(evidence)
        }
        refused => refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tier;

    #[test]
    fn every_mode_four_eyes_and_offer_has_one_route() {
        use ConfirmMode::{Approval, Both, Either, Typed};
        use Route::{AskPerson, CheckToken, CheckTokenThenAskPerson, Unavailable};
        use Unconfirmable::{FourEyesNeedsToken, FourEyesTypedOnly, TokenRequired};
        let table = [
            // (mode, four_eyes, token offered) → route
            ((Typed, false, false), AskPerson),
            ((Typed, false, true), AskPerson),
            ((Typed, true, false), Unavailable(FourEyesTypedOnly)),
            ((Typed, true, true), Unavailable(FourEyesTypedOnly)),
            ((Either, false, false), AskPerson),
            ((Either, false, true), CheckToken),
            ((Either, true, false), Unavailable(FourEyesNeedsToken)),
            ((Either, true, true), CheckToken),
            ((Approval, false, false), Unavailable(TokenRequired)),
            ((Approval, false, true), CheckToken),
            ((Approval, true, false), Unavailable(TokenRequired)),
            ((Approval, true, true), CheckToken),
            // The token is the other pair of eyes; the person still types.
            ((Both, false, false), Unavailable(TokenRequired)),
            ((Both, false, true), CheckTokenThenAskPerson),
            ((Both, true, false), Unavailable(TokenRequired)),
            ((Both, true, true), CheckTokenThenAskPerson),
        ];
        // Every kind but an agent routes the same way.
        for actor in [ActorKind::Human, ActorKind::Ci, ActorKind::Service] {
            for ((mode, four_eyes, offered), expected) in table {
                assert_eq!(
                    route(mode, actor, four_eyes, offered),
                    expected,
                    "{actor:?} {mode:?} four_eyes={four_eyes} offered={offered}"
                );
            }
        }
    }

    #[test]
    fn an_agent_is_never_asked_to_type() {
        use ConfirmMode::{Approval, Both, Either, Typed};
        use Route::{CheckToken, Unavailable};
        use Unconfirmable::{AgentNeedsToken, AgentTypedOnly, TokenRequired};
        let table = [
            // (mode, four_eyes, token offered) → route, for an agent
            ((Typed, false, false), Unavailable(AgentTypedOnly)),
            ((Typed, false, true), Unavailable(AgentTypedOnly)),
            ((Typed, true, false), Unavailable(AgentTypedOnly)),
            ((Typed, true, true), Unavailable(AgentTypedOnly)),
            ((Either, false, false), Unavailable(AgentNeedsToken)),
            ((Either, false, true), CheckToken),
            ((Either, true, false), Unavailable(AgentNeedsToken)),
            ((Either, true, true), CheckToken),
            ((Approval, false, false), Unavailable(TokenRequired)),
            ((Approval, false, true), CheckToken),
            ((Approval, true, false), Unavailable(TokenRequired)),
            ((Approval, true, true), CheckToken),
            ((Both, false, true), Unavailable(AgentTypedOnly)),
            ((Both, true, true), Unavailable(AgentTypedOnly)),
        ];
        for ((mode, four_eyes, offered), expected) in table {
            assert_eq!(
                route(mode, ActorKind::Agent, four_eyes, offered),
                expected,
                "{mode:?} four_eyes={four_eyes} offered={offered}"
            );
        }
    }

    #[test]
    fn a_typed_answer_confirms_only_the_expected_name() {
        let challenge = Challenge {
            operation: "db.migrate".into(),
            target: Some("orders".into()),
            environment: "production".into(),
            tier: Tier::Production,
            why: "why".into(),
            expected: "orders".into(),
            mode: ConfirmMode::Either,
            consequences: Vec::new(),
        };
        let ConfirmationAnswer::Confirmed(evidence) =
            typed_answer(&challenge, " orders\n", Some("ana".into()))
        else {
            panic!("not confirmed")
        };
        assert_eq!(
            (evidence.method.as_str(), evidence.approver.as_deref()),
            ("typed", Some("ana"))
        );
        assert_eq!(
            typed_answer(&challenge, "order", None),
            ConfirmationAnswer::Declined("typed `order`, expected `orders`".into())
        );
    }
}
