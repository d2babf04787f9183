//! Reads an AdmissionReview body with [`json::Reader`] into the same values the serde
//! derive path (`review::serde_path`, kept as the reference) produces, with the same
//! semantics:
//!
//! - the envelope is strict: a field of the wrong type is a data error (`NotAReview`),
//!   `null` reads as absent (except for the non-optional strings of `request.kind` and
//!   `request.userInfo`, where serde rejects it too);
//! - `request.object`/`oldObject` are read into the lenient [`HookObject`] view: a leaf of the
//!   wrong type reads as absent, map entries with non-string values are left out (later
//!   duplicates win), non-matching list items are skipped;
//! - in every struct a known field given twice is a data error (serde derive's
//!   `duplicate field`), reported at the key; unknown fields are skipped;
//! - values are validated exactly where serde_json validates them (see `json`): a value read
//!   by a visitor has its strings and numbers checked in full, a skipped one only its form.
//!
//! The one deliberate difference from the serde path (the differential test excludes exactly
//! this, recognising it by [`ErrorKind`]):
//!
//! - `ArrayForStruct`: serde derive also reads a struct from a JSON array, positionally (a
//!   whole review sent as `[...]`, or `request.kind: ["batch", "Job"]`); here an array where
//!   the review, `request`, `request.kind` or `request.userInfo` is expected is `NotAReview`.

use super::json::{self, ErrorKind, Reader, Value};
use super::review::{Envelope, WireGvk, WireObject, WireRequest, WireUser};
use crate::hooks::{
    ContainerView, HookObject, Metadata, PodTemplateView, SecurityContextView, SpecView, StringMap,
};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Reads a whole review; the text must be the entire body.
pub(super) fn envelope(text: &str) -> json::Result<Envelope<'_>> {
    let mut r = Reader::new(text);
    let envelope = match r.value()? {
        Value::Object => read_envelope(&mut r)?,
        other => return Err(not_a_struct(&r, &other, "an AdmissionReview object")),
    };
    r.end()?;
    Ok(envelope)
}

/// Reads the members of the object the reader stands on: for each key, `$field => $slot =
/// $read` stores `Some($read)` in `$slot` (declared here, `None` until seen) after checking
/// the field was not seen before; other keys are skipped.
macro_rules! members {
    ($r:ident, { $($field:literal => $slot:ident = $read:expr,)* }) => {
        $(let mut $slot = None;)*
        let mut members = $r.begin_object()?;
        while let Some(key) = members.next_key($r)? {
            match &*key {
                $($field => {
                    if $slot.is_some() {
                        return Err(duplicate($r, $field));
                    }
                    $r.colon()?;
                    $slot = Some($read);
                })*
                _ => {
                    $r.colon()?;
                    $r.skip_value()?;
                }
            }
        }
    };
}

#[cold]
fn duplicate(r: &Reader<'_>, field: &str) -> json::Error {
    r.data_error(r.offset(), format!("duplicate field `{field}`"))
}

/// A non-object where a strict struct is expected.
#[cold]
fn not_a_struct(r: &Reader<'_>, found: &Value<'_>, expected: &str) -> json::Error {
    let offset = r.offset();
    if *found == Value::Array {
        return r.error_at(
            ErrorKind::ArrayForStruct,
            offset,
            format!("invalid type: an array, expected {expected}"),
        );
    }
    r.data_error(
        offset,
        format!("invalid type: {}, expected {expected}", found.describe()),
    )
}

#[cold]
fn wrong_type(r: &Reader<'_>, found: &Value<'_>, expected: &str) -> json::Error {
    r.data_error(
        r.offset(),
        format!("invalid type: {}, expected {expected}", found.describe()),
    )
}

fn read_envelope<'a>(r: &mut Reader<'a>) -> json::Result<Envelope<'a>> {
    members!(r, {
        "apiVersion" => api_version = opt_string(r)?,
        "kind" => kind = opt_string(r)?,
        "request" => request = match r.value()? {
            Value::Null => None,
            Value::Object => Some(read_request(r)?),
            other => return Err(not_a_struct(r, &other, "struct WireRequest")),
        },
    });
    Ok(Envelope {
        api_version: api_version.flatten(),
        kind: kind.flatten(),
        request: request.flatten(),
    })
}

fn read_request<'a>(r: &mut Reader<'a>) -> json::Result<WireRequest<'a>> {
    members!(r, {
        "uid" => uid = opt_string(r)?,
        "kind" => kind = match r.value()? {
            Value::Null => None,
            Value::Object => Some(read_gvk(r)?),
            other => return Err(not_a_struct(r, &other, "struct WireGvk")),
        },
        "name" => name = opt_string(r)?,
        "namespace" => namespace = opt_string(r)?,
        "operation" => operation = opt_string(r)?,
        "userInfo" => user_info = match r.value()? {
            Value::Null => None,
            Value::Object => Some(read_user(r)?),
            other => return Err(not_a_struct(r, &other, "struct WireUser")),
        },
        "object" => object = wire_object(r)?,
        "oldObject" => old_object = wire_object(r)?,
        "dryRun" => dry_run = match r.value()? {
            Value::Null => None,
            Value::Bool(b) => Some(b),
            other => return Err(wrong_type(r, &other, "a boolean")),
        },
    });
    Ok(WireRequest {
        uid: uid.flatten(),
        kind: kind.flatten(),
        name: name.flatten(),
        namespace: namespace.flatten(),
        operation: operation.flatten(),
        user_info: user_info.flatten(),
        object: object.unwrap_or_default(),
        old_object: old_object.unwrap_or_default(),
        dry_run: dry_run.flatten(),
    })
}

fn read_gvk<'a>(r: &mut Reader<'a>) -> json::Result<WireGvk<'a>> {
    members!(r, {
        "group" => group = string(r)?,
        "kind" => kind = string(r)?,
    });
    Ok(WireGvk {
        group: group.unwrap_or_default(),
        kind: kind.unwrap_or_default(),
    })
}

fn read_user<'a>(r: &mut Reader<'a>) -> json::Result<WireUser<'a>> {
    members!(r, {
        "username" => username = string(r)?,
    });
    Ok(WireUser {
        username: username.unwrap_or_default(),
    })
}

/// An `Option<String>` field: `null` is absent, anything but a string an error.
fn opt_string<'a>(r: &mut Reader<'a>) -> json::Result<Option<Cow<'a, str>>> {
    match r.value()? {
        Value::Str(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        other => Err(wrong_type(r, &other, "a string")),
    }
}

/// A `String` field: only a string will do.
fn string<'a>(r: &mut Reader<'a>) -> json::Result<Cow<'a, str>> {
    match r.value()? {
        Value::Str(s) => Ok(s),
        other => Err(wrong_type(r, &other, "a string")),
    }
}

fn wire_object<'a>(r: &mut Reader<'a>) -> json::Result<WireObject<'a>> {
    let what = match r.value()? {
        Value::Object => return Ok(WireObject::Object(Box::new(hook_object(r)?))),
        Value::Null => return Ok(WireObject::Absent),
        Value::Array => {
            r.drain(&Value::Array)?;
            "an array"
        }
        Value::Str(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
    };
    Ok(WireObject::NotAnObject(what))
}

// ---- the lenient object view ----------------------------------------------------------

fn hook_object<'a>(r: &mut Reader<'a>) -> json::Result<HookObject<'a>> {
    members!(r, {
        "apiVersion" => api_version = lax_string(r)?,
        "kind" => kind = lax_string(r)?,
        "metadata" => metadata = lax_object(r, read_metadata)?,
        "spec" => spec = lax_object(r, read_spec_view)?,
    });
    Ok(HookObject {
        api_version: api_version.flatten(),
        kind: kind.flatten(),
        metadata: metadata.flatten(),
        spec: spec.flatten(),
    })
}

fn read_metadata<'a>(r: &mut Reader<'a>) -> json::Result<Metadata<'a>> {
    members!(r, {
        "name" => name = lax_string(r)?,
        "generateName" => generate_name = lax_string(r)?,
        "namespace" => namespace = lax_string(r)?,
        "annotations" => annotations = lax_string_map(r)?,
        "labels" => labels = lax_string_map(r)?,
        "finalizers" => finalizers = lax_string_list(r)?,
        "deletionTimestamp" => deletion_timestamp = lax_string(r)?,
        "creationTimestamp" => creation_timestamp = lax_string(r)?,
    });
    Ok(Metadata {
        name: name.flatten(),
        generate_name: generate_name.flatten(),
        namespace: namespace.flatten(),
        annotations: annotations.flatten(),
        labels: labels.flatten(),
        finalizers: finalizers.flatten(),
        deletion_timestamp: deletion_timestamp.flatten(),
        creation_timestamp: creation_timestamp.flatten(),
    })
}

/// `SpecView` and `PodTemplateView` nest each other (`spec.template.spec`): this recursion
/// is bounded by the reader's depth limit, two levels per round.
fn read_spec_view<'a>(r: &mut Reader<'a>) -> json::Result<SpecView<'a>> {
    members!(r, {
        "ttlSecondsAfterFinished" => ttl = lax_int(r)?,
        "activeDeadlineSeconds" => deadline = lax_int(r)?,
        "template" => template = lax_object(r, read_pod_template)?,
        "restartPolicy" => restart_policy = lax_string(r)?,
        "securityContext" => security_context = lax_object(r, read_security_context_view)?,
        "containers" => containers = lax_object_list(r, read_container)?,
        "initContainers" => init_containers = lax_object_list(r, read_container)?,
    });
    Ok(SpecView {
        ttl_seconds_after_finished: ttl.flatten(),
        active_deadline_seconds: deadline.flatten(),
        template: template.flatten(),
        restart_policy: restart_policy.flatten(),
        security_context: security_context.flatten(),
        containers: containers.flatten(),
        init_containers: init_containers.flatten(),
    })
}

fn read_pod_template<'a>(r: &mut Reader<'a>) -> json::Result<PodTemplateView<'a>> {
    members!(r, {
        "spec" => spec = lax_object(r, |r| read_spec_view(r).map(Box::new))?,
    });
    Ok(PodTemplateView {
        spec: spec.flatten(),
    })
}

fn read_container<'a>(r: &mut Reader<'a>) -> json::Result<ContainerView<'a>> {
    members!(r, {
        "name" => name = lax_string(r)?,
        "securityContext" => security_context = lax_object(r, read_security_context_view)?,
    });
    Ok(ContainerView {
        name: name.flatten(),
        security_context: security_context.flatten(),
    })
}

fn read_security_context_view(r: &mut Reader<'_>) -> json::Result<SecurityContextView> {
    members!(r, {
        "privileged" => privileged = lax_bool(r)?,
        "runAsUser" => run_as_user = lax_int(r)?,
        "runAsNonRoot" => run_as_non_root = lax_bool(r)?,
    });
    Ok(SecurityContextView {
        privileged: privileged.flatten(),
        run_as_user: run_as_user.flatten(),
        run_as_non_root: run_as_non_root.flatten(),
    })
}

// ---- lenient leaves (object.rs's visitors) --------------------------------------------

/// The string as the reader gives it: borrowed from the body unless it had escapes.
fn lax_string<'a>(r: &mut Reader<'a>) -> json::Result<Option<Cow<'a, str>>> {
    match r.value()? {
        Value::Str(s) => Ok(Some(s)),
        other => r.drain(&other).map(|()| None),
    }
}

/// An integer that fits i64; floats and anything else read as absent.
fn lax_int(r: &mut Reader<'_>) -> json::Result<Option<i64>> {
    match r.value()? {
        Value::Number(json::Number::I64(n)) => Ok(Some(n)),
        Value::Number(json::Number::U64(n)) => Ok(i64::try_from(n).ok()),
        other => r.drain(&other).map(|()| None),
    }
}

fn lax_bool(r: &mut Reader<'_>) -> json::Result<Option<bool>> {
    match r.value()? {
        Value::Bool(b) => Ok(Some(b)),
        other => r.drain(&other).map(|()| None),
    }
}

fn lax_object<'a, T>(
    r: &mut Reader<'a>,
    read: impl FnOnce(&mut Reader<'a>) -> json::Result<T>,
) -> json::Result<Option<T>> {
    match r.value()? {
        Value::Object => read(r).map(Some),
        other => r.drain(&other).map(|()| None),
    }
}

fn lax_object_list<'a, T>(
    r: &mut Reader<'a>,
    read: fn(&mut Reader<'a>) -> json::Result<T>,
) -> json::Result<Option<Vec<T>>> {
    match r.value()? {
        Value::Array => {
            let mut items = r.begin_array()?;
            let mut out = Vec::new();
            while items.next(r)? {
                out.extend(lax_object(r, read)?);
            }
            Ok(Some(out))
        }
        other => r.drain(&other).map(|()| None),
    }
}

fn lax_string_map<'a>(r: &mut Reader<'a>) -> json::Result<Option<StringMap<'a>>> {
    match r.value()? {
        Value::Object => {
            let mut entries = r.begin_object()?;
            let mut out = BTreeMap::new();
            while let Some(key) = entries.next_key(r)? {
                r.colon()?;
                if let Some(value) = lax_string(r)? {
                    out.insert(key, value);
                }
            }
            Ok(Some(out))
        }
        other => r.drain(&other).map(|()| None),
    }
}

fn lax_string_list<'a>(r: &mut Reader<'a>) -> json::Result<Option<Vec<Cow<'a, str>>>> {
    match r.value()? {
        Value::Array => {
            let mut items = r.begin_array()?;
            let mut out = Vec::new();
            while items.next(r)? {
                out.extend(lax_string(r)?);
            }
            Ok(Some(out))
        }
        other => r.drain(&other).map(|()| None),
    }
}
