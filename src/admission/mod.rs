//! AdmissionReview `admission.k8s.io/v1` in, AdmissionReview out. Pure: the HTTP layer hands
//! over the body bytes and sends back what `review` returns.
//!
//! An unreadable review is answered with an `invalid` response (allowed: false, code 400),
//! never an error status, so the apiserver shows the reason. A readable one is answered
//! by the rules (validate) or the mutation plan (mutate).

mod review;

pub use review::{Operation, ReviewError};

use crate::hooks::{HookModel, HookObject};
use crate::mutation::{self, MutationSettings, Stage};
use crate::rules::{self, Action, Finding, RuleId};
use base64::Engine;
use review::{Request, Response, Status};
use std::collections::BTreeMap;

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

/// Per-rule actions; rules not listed keep their catalogue default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleActions(pub BTreeMap<RuleId, Action>);

impl RuleActions {
    pub fn action(&self, rule: RuleId) -> Action {
        self.0.get(&rule).copied().unwrap_or(rule.default_action())
    }
}

/// Everything the admission decision depends on besides the request.
#[derive(Debug, Clone, Default)]
pub struct AdmissionConfig {
    pub actions: RuleActions,
    pub mutation: MutationSettings,
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
pub struct Outcome {
    pub body: Vec<u8>,
    pub decision: Decision,
}

#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub uid: String,
    pub operation: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub user: String,
    pub dry_run: bool,
    pub allowed: bool,
    /// Rules that fired with an action other than `off`.
    pub rules: Vec<(RuleId, Action)>,
    pub patched: bool,
    pub path: Option<Path>,
    /// For an unreadable review: why.
    pub error: Option<String>,
}

impl Decision {
    pub fn verdict(&self) -> &'static str {
        match (self.path, self.allowed) {
            (Some(Path::Invalid), _) => "invalid",
            (_, false) => "denied",
            _ if self.rules.iter().any(|(_, a)| *a == Action::Warn) => "warned",
            _ if self.patched => "patched",
            _ => "allowed",
        }
    }
}

/// Answers one AdmissionReview body.
pub fn review(webhook: Webhook, body: &[u8], config: &AdmissionConfig) -> Outcome {
    match Request::parse(body) {
        Ok(request) => decide(webhook, &request, config),
        Err((uid, error)) => {
            let decision = Decision {
                uid: uid.clone().unwrap_or_default(),
                path: Some(Path::Invalid),
                error: Some(error.to_string()),
                ..Decision::default()
            };
            let response = Response {
                uid: uid.unwrap_or_default(),
                allowed: false,
                status: Some(Status::invalid(format!(
                    "hookguard could not read the AdmissionReview: {error}"
                ))),
                ..Response::default()
            };
            Outcome {
                body: response.encode(),
                decision,
            }
        }
    }
}

fn decide(webhook: Webhook, req: &Request<'_>, config: &AdmissionConfig) -> Outcome {
    let mut decision = Decision {
        uid: req.uid.clone(),
        operation: req.operation.as_str().to_owned(),
        kind: req.kind.clone(),
        namespace: req.namespace.clone(),
        name: req.name.clone(),
        user: req.user.clone(),
        dry_run: req.dry_run,
        allowed: true,
        ..Decision::default()
    };
    let mut response = Response {
        uid: req.uid.clone(),
        allowed: true,
        ..Response::default()
    };
    let finish = |decision: Decision, response: Response| Outcome {
        body: response.encode(),
        decision,
    };
    let invalid = |mut decision: Decision, mut response: Response, error: ReviewError| {
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
    let Some(raw) = req.object else {
        let error = ReviewError::MissingObject(req.operation.as_str());
        return invalid(decision, response, error);
    };
    // Fast path: without either annotation prefix in the raw bytes there is nothing to read.
    // (The apiserver's encoder never escapes these ASCII characters.)
    let bytes = raw.get().as_bytes();
    if memchr::memmem::find(bytes, b"argocd.argoproj.io").is_none()
        && memchr::memmem::find(bytes, b"helm.sh").is_none()
    {
        decision.path = Some(Path::NoHookAnnotations);
        return finish(decision, response);
    }
    let object: HookObject = match serde_json::from_str(raw.get()) {
        Ok(o) => o,
        Err(e) => {
            return invalid(
                decision,
                response,
                ReviewError::UnreadableObject(e.to_string()),
            )
        }
    };
    let empty = BTreeMap::new();
    let annotations = object.annotations().unwrap_or(&empty);
    if !HookModel::has_hook_annotations(annotations) {
        decision.path = Some(Path::NoHookAnnotations);
        return finish(decision, response);
    }
    if req.operation == Operation::Update {
        match review::update_is_exempt(&object, raw, req.old_object) {
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
            let findings = rules::check(&object, &model);
            apply_findings(&findings, config, &mut decision, &mut response);
        }
        Webhook::Mutate => {
            let stage = if req.operation == Operation::Create {
                Stage::Create
            } else {
                Stage::Update
            };
            let changes = mutation::plan(&object, &model, &config.mutation, stage);
            let patch = mutation::to_json_patch(&object, &changes);
            if !patch.0.is_empty() {
                // Serialising a Patch of strings and maps cannot fail.
                let json = serde_json::to_vec(&patch).unwrap_or_default();
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
                decision.patched = true;
            }
        }
    }
    finish(decision, response)
}

/// Turns findings into the denial, warnings and audit annotation of the response.
fn apply_findings(
    findings: &[Finding],
    config: &AdmissionConfig,
    decision: &mut Decision,
    response: &mut Response,
) {
    let mut denials = Vec::new();
    for finding in findings {
        let action = config.actions.action(finding.rule);
        match action {
            Action::Off => continue,
            Action::Deny => denials.push(finding.render()),
            Action::Warn => response.warnings.push(finding.warning()),
        }
        decision.rules.push((finding.rule, action));
    }
    if !decision.rules.is_empty() {
        let fired: Vec<&str> = decision.rules.iter().map(|(r, _)| r.name()).collect();
        response
            .audit_annotations
            .insert("rules".to_owned(), fired.join(","));
    }
    if !denials.is_empty() {
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
