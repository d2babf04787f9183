//! AdmissionReview `admission.k8s.io/v1` in, AdmissionReview out. Pure: the HTTP layer hands
//! over the body bytes and sends back what `review` returns.
//!
//! An unreadable review is answered with an `invalid` response (allowed: false, code 400),
//! never an error status, so the apiserver shows the reason. A readable one is answered
//! by the rules (validate) or the mutation plan (mutate).

#[cfg(any(test, feature = "serde-reference"))]
#[doc(hidden)]
pub mod differential;
mod json;
mod read;
mod review;

pub use review::{Operation, ReviewError, WireObject};

use crate::hooks::HookModel;
use crate::mutation::{self, MutationSettings, Stage};
use crate::policy::namespaces::NamespaceLabels;
use crate::policy::{
    self, ActivePolicy, Effect, Labels, Mode, NamespaceRef, PolicyStore, ShortHash,
};
use crate::rules::{self, Action, Finding, RuleId};
use review::{Request, Response, Status};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which webhook endpoint a review arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

/// Everything the admission decision depends on besides the request: one snapshot of the
/// policy, taken per request (see `policy::PolicyStore`), so a reload never splits a request.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    pub policy: Arc<ActivePolicy>,
    /// The policy's `mutation` switches, possibly narrowed by command-line flags.
    pub mutation: MutationSettings,
    /// Namespace labels, for overrides that select by label.
    pub namespaces: NamespaceLabels,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig::from_policy(Arc::new(ActivePolicy::defaults()))
    }
}

impl AdmissionConfig {
    /// A store serving `policy` (reloads derive the config with `from_policy`); the server's
    /// `AppState` holds one. `serve` builds its own, which also applies command-line flags.
    pub fn store(policy: ActivePolicy) -> PolicyStore<AdmissionConfig> {
        PolicyStore::new(policy, |p| AdmissionConfig::from_policy(p.clone()))
    }

    pub fn from_policy(policy: Arc<ActivePolicy>) -> Self {
        AdmissionConfig {
            mutation: policy.policy.mutation.settings(),
            policy,
            namespaces: NamespaceLabels::default(),
        }
    }
}

/// Why a request was answered the way it was (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The review could not be read.
    Invalid,
    /// DELETE, CONNECT, a finalizer-only UPDATE, or an UPDATE of an object being deleted.
    Exempt,
    /// The object carries none of the six hook annotations.
    NoHookAnnotations,
    /// The rules or the mutation plan were evaluated.
    Evaluated,
}

/// The outcome of one review: the body to send and what was decided.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    pub body: Vec<u8>,
    pub decision: Decision<'a>,
}

/// Its strings borrow from the request's body where they can (see `Request`).
#[derive(Debug, Clone, Default)]
pub struct Decision<'a> {
    pub uid: Cow<'a, str>,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or empty when the review was unreadable.
    pub operation: &'static str,
    pub kind: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub user: Cow<'a, str>,
    pub dry_run: bool,
    pub allowed: bool,
    /// Rules that denied or warned, with that effect (`Deny` or `Warn`).
    pub rules: Vec<(RuleId, Action)>,
    /// Rules that fired in `audit` mode, with the action they are configured with.
    pub audited: Vec<(RuleId, Action)>,
    /// Rules configured `deny` whose denial the mode (`warn` or `audit`) softened.
    pub would_deny: Vec<RuleId>,
    /// The mode in force for the request's namespace (validate only).
    pub mode: Option<Mode>,
    /// The first 12 hex digits of the active policy's sha256.
    pub policy_hash: ShortHash,
    pub patched: bool,
    pub path: Option<Path>,
    /// For an unreadable review: why.
    pub error: Option<String>,
}

impl Decision<'_> {
    pub fn verdict(&self) -> &'static str {
        match (self.path, self.allowed) {
            (Some(Path::Invalid), _) => "invalid",
            (_, false) => "denied",
            _ if self.rules.iter().any(|(_, a)| *a == Action::Warn) => "warned",
            _ if !self.audited.is_empty() => "audited",
            _ if self.patched => "patched",
            _ => "allowed",
        }
    }
}

/// Answers one AdmissionReview body.
pub fn review<'a>(webhook: Webhook, body: &'a [u8], config: &AdmissionConfig) -> Outcome<'a> {
    match Request::parse(body) {
        Ok(request) => decide(webhook, request, config),
        Err((uid, error)) => {
            let decision = Decision {
                uid: uid.map(Cow::Owned).unwrap_or_default(),
                path: Some(Path::Invalid),
                error: Some(error.to_string()),
                ..Decision::default()
            };
            let response = Response {
                allowed: false,
                status: Some(Status::invalid(format!(
                    "hookguard could not read the AdmissionReview: {error}"
                ))),
                ..Response::default()
            };
            Outcome {
                body: response.encode(&decision.uid),
                decision,
            }
        }
    }
}

fn decide<'a>(webhook: Webhook, mut req: Request<'a>, config: &AdmissionConfig) -> Outcome<'a> {
    // The request's strings move into the decision (the log and metrics need them), and
    // the answer takes its uid from there: no copies.
    let mut decision = Decision {
        uid: std::mem::take(&mut req.uid),
        operation: req.operation.as_str(),
        kind: std::mem::take(&mut req.kind),
        namespace: std::mem::take(&mut req.namespace),
        name: std::mem::take(&mut req.name),
        user: std::mem::take(&mut req.user),
        dry_run: req.dry_run,
        allowed: true,
        policy_hash: config.policy.short_hash(),
        ..Decision::default()
    };
    let mut response = Response {
        allowed: true,
        ..Response::default()
    };
    let finish = |decision: Decision<'a>, response: Response| Outcome {
        body: response.encode(&decision.uid),
        decision,
    };
    let invalid = |mut decision: Decision<'a>, mut response: Response, error: ReviewError| {
        decision.allowed = false;
        decision.path = Some(Path::Invalid);
        decision.error = Some(error.to_string());
        response.allowed = false;
        response.status = Some(Status::invalid(format!(
            "hookguard could not read the AdmissionReview: {error}"
        )));
        finish(decision, response)
    };

    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        decision.path = Some(Path::Exempt);
        return finish(decision, response);
    }
    let object = match &req.object {
        WireObject::Object(o) => o,
        WireObject::Absent => {
            let error = ReviewError::MissingObject(req.operation.as_str());
            return invalid(decision, response, error);
        }
        WireObject::NotAnObject(what) => {
            let error = ReviewError::UnreadableObject(format!("it is {what}"));
            return invalid(decision, response, error);
        }
    };
    let empty = BTreeMap::new();
    let annotations = object.annotations().unwrap_or(&empty);
    if !HookModel::has_hook_annotations(annotations) {
        decision.path = Some(Path::NoHookAnnotations);
        return finish(decision, response);
    }
    if req.operation == Operation::Update {
        match review::update_is_exempt(object, &req.old_object, req.body) {
            Ok(true) => {
                decision.path = Some(Path::Exempt);
                return finish(decision, response);
            }
            Ok(false) => {}
            Err(e) => return invalid(decision, response, e),
        }
    }
    decision.path = Some(Path::Evaluated);
    let model = HookModel::from_annotations(annotations);

    match webhook {
        Webhook::Validate => {
            // Out of the decision while `ns` borrows it and the findings fill the decision.
            let namespace = std::mem::take(&mut decision.namespace);
            // Labels are looked up only when the policy selects by them (the common case
            // costs nothing); unknown labels resolve as strictly as possible.
            let labels = if config.policy.policy.uses_namespace_labels() {
                config.namespaces.get(&namespace)
            } else {
                None
            };
            let ns = NamespaceRef::new(
                &namespace,
                match &labels {
                    Some(l) => Labels::Known(l),
                    None if config.policy.policy.uses_namespace_labels() => Labels::Unknown,
                    None => Labels::Known(&EMPTY_LABELS),
                },
            );
            // Only denials and warnings show their message: the rest are not written.
            let policy = &config.policy.policy;
            let findings = rules::check_for(object, &model, &|rule| {
                matches!(
                    policy.resolve(rule, &ns).effect,
                    Effect::Warn | Effect::Deny
                )
            });
            decision.mode = Some(config.policy.policy.mode_for(&ns));
            apply_findings(
                &findings,
                &config.policy.policy,
                &ns,
                &mut decision,
                &mut response,
            );
            decision.namespace = namespace;
        }
        Webhook::Mutate => {
            let stage = if req.operation == Operation::Create {
                Stage::Create
            } else {
                Stage::Update
            };
            let changes = mutation::plan(object, &model, &config.mutation, stage);
            // `encode` writes it in base64. Empty exactly when `to_json_patch` is.
            let patch = mutation::json_patch_bytes(object, &changes);
            if !patch.is_empty() {
                response.patch = Some(patch);
                decision.patched = true;
            }
        }
    }
    finish(decision, response)
}

static EMPTY_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Turns findings into the denial, warnings and audit annotations of the response, by the
/// one verdict function `lint` uses too.
fn apply_findings(
    findings: &[Finding],
    policy: &policy::Policy,
    ns: &NamespaceRef<'_>,
    decision: &mut Decision<'_>,
    response: &mut Response,
) {
    let verdict = policy::verdict(findings, policy, ns);
    for hit in &verdict.denials {
        decision.rules.push((hit.finding.rule, Action::Deny));
    }
    for hit in &verdict.warnings {
        decision.rules.push((hit.finding.rule, Action::Warn));
        response.warnings.push(hit.finding.warning());
    }
    for hit in &verdict.audits {
        decision
            .audited
            .push((hit.finding.rule, hit.resolved.action));
    }
    decision.would_deny = verdict.would_deny().collect();

    let fired: Vec<&str> = verdict.hits().map(|h| h.finding.rule.name()).collect();
    if !fired.is_empty() {
        response
            .audit_annotations
            .insert("rules".to_owned(), fired.join(","));
    }
    if !decision.audited.is_empty() {
        let audited: Vec<String> = decision
            .audited
            .iter()
            .map(|(r, a)| format!("{r}={a}"))
            .collect();
        response
            .audit_annotations
            .insert("audit".to_owned(), audited.join(","));
    }
    if !decision.would_deny.is_empty() {
        let names: Vec<&str> = decision.would_deny.iter().map(|r| r.name()).collect();
        response
            .audit_annotations
            .insert("would-deny".to_owned(), names.join(","));
    }
    if !verdict.allowed() {
        let denials: Vec<String> = verdict.denials.iter().map(|h| h.finding.render()).collect();
        decision.allowed = false;
        response.allowed = false;
        response.status = Some(Status::forbidden(format!(
            "hookguard: {}",
            denials.join("; ")
        )));
    }
}

#[cfg(test)]
mod tests;
