//! A lenient, typed view of the parts of a Kubernetes object that hook rules read.
//!
//! Admission requests can carry any kind (custom resources included) and lint reads
//! hand-written YAML, so a field of an unexpected type must never make the whole object
//! unreadable: every leaf here is parsed leniently (a wrong type reads as absent) and
//! everything else is skipped without being materialised, which keeps a 1 MiB object cheap.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A `map[string]string` (annotations, labels). Its strings borrow from the admission
/// request's body where they can (no escapes in them), and are owned otherwise.
pub type StringMap<'a> = BTreeMap<Cow<'a, str>, Cow<'a, str>>;

/// Its strings borrow from the text it was read from where they can: the admission reader
/// hands out the body's own bytes for a string without escapes, which saves about ten
/// allocations per review. Read with serde (lint's YAML, tests) they are always owned.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookObject<'a> {
    #[serde(default, deserialize_with = "lax_string")]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lax_string")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lax_object")]
    pub metadata: Option<Metadata<'a>>,
    #[serde(default, deserialize_with = "lax_object")]
    pub spec: Option<SpecView<'a>>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata<'a> {
    #[serde(default, deserialize_with = "lax_string")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lax_string")]
    pub generate_name: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lax_string")]
    pub namespace: Option<Cow<'a, str>>,
    /// `None` when the map is absent (the JSON Patch must then create it).
    #[serde(default, deserialize_with = "lax_string_map")]
    pub annotations: Option<StringMap<'a>>,
    #[serde(default, deserialize_with = "lax_string_map")]
    pub labels: Option<StringMap<'a>>,
    #[serde(default, deserialize_with = "lax_string_list")]
    pub finalizers: Option<Vec<Cow<'a, str>>>,
    #[serde(default, deserialize_with = "lax_string")]
    pub deletion_timestamp: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lax_string")]
    pub creation_timestamp: Option<Cow<'a, str>>,
}

/// The union of the `spec` fields hook rules read: a Job's fields and a PodSpec's. For a Pod
/// the spec *is* the PodSpec; for a Job the PodSpec is `spec.template.spec`, read with the
/// same type. (No `#[serde(flatten)]`: it would buffer the whole spec.)
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecView<'a> {
    #[serde(default, deserialize_with = "lax_int")]
    pub ttl_seconds_after_finished: Option<i64>,
    #[serde(default, deserialize_with = "lax_int")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, deserialize_with = "lax_object")]
    pub template: Option<PodTemplateView<'a>>,
    #[serde(default, deserialize_with = "lax_string")]
    pub restart_policy: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lax_object")]
    pub security_context: Option<SecurityContextView>,
    #[serde(default, deserialize_with = "lax_object_list")]
    pub containers: Option<Vec<ContainerView<'a>>>,
    #[serde(default, deserialize_with = "lax_object_list")]
    pub init_containers: Option<Vec<ContainerView<'a>>>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct PodTemplateView<'a> {
    #[serde(default, deserialize_with = "lax_object")]
    pub spec: Option<Box<SpecView<'a>>>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView<'a> {
    #[serde(default, deserialize_with = "lax_string")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lax_object")]
    pub security_context: Option<SecurityContextView>,
}

/// Fields shared by the pod-level and the container-level security context.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContextView {
    #[serde(default, deserialize_with = "lax_bool")]
    pub privileged: Option<bool>,
    #[serde(default, deserialize_with = "lax_int")]
    pub run_as_user: Option<i64>,
    #[serde(default, deserialize_with = "lax_bool")]
    pub run_as_non_root: Option<bool>,
}

impl HookObject<'_> {
    pub fn annotations(&self) -> Option<&StringMap<'_>> {
        self.metadata.as_ref()?.annotations.as_ref()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations()?.get(key).map(|v| &**v)
    }

    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("")
    }

    /// The API group of `apiVersion` (`""` for the core group).
    pub fn group(&self) -> &str {
        match self.api_version.as_deref() {
            Some(v) => v.rsplit_once('/').map(|(g, _)| g).unwrap_or(""),
            None => "",
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.metadata
            .as_ref()?
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
    }

    pub fn generate_name(&self) -> Option<&str> {
        self.metadata
            .as_ref()?
            .generate_name
            .as_deref()
            .filter(|n| !n.is_empty())
    }

    pub fn is_being_deleted(&self) -> bool {
        self.metadata
            .as_ref()
            .is_some_and(|m| m.deletion_timestamp.is_some())
    }

    pub fn is_kind(&self, group: &str, kind: &str) -> bool {
        self.group() == group && self.kind() == kind
    }

    /// The pod spec that runs: a Pod's own spec, a Job's `spec.template.spec`.
    pub fn pod_spec(&self) -> Option<&SpecView<'_>> {
        let spec = self.spec.as_ref()?;
        if self.is_kind("", "Pod") {
            Some(spec)
        } else if self.is_kind("batch", "Job") {
            spec.template.as_ref()?.spec.as_deref()
        } else {
            None
        }
    }
}

// ---- lenient leaf readers -------------------------------------------------------------

/// `visit_*` methods for the listed JSON types that consume the value (draining maps and
/// sequences) and read it as absent: every lenient visitor accepts its own types and lists the
/// rest here.
macro_rules! absent_for {
    ($($kind:ident),* $(,)?) => { $(absent_for!(@arm $kind);)* };
    (@arm map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
    (@arm seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
    (@arm str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@arm i64) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@arm u64) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@arm bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@arm f64) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@arm bytes) => {
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@arm unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@arm none) => {
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

struct StringVisitor;
impl<'de> Visitor<'de> for StringVisitor {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    absent_for!(i64, u64, map, seq, unit, none, bool, f64, bytes);
}

struct IntVisitor;
impl<'de> Visitor<'de> for IntVisitor {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).ok())
    }
    absent_for!(str, map, seq, unit, none, bool, f64, bytes);
}

struct BoolVisitor;
impl<'de> Visitor<'de> for BoolVisitor {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    absent_for!(i64, u64, str, map, seq, unit, none, f64);
}

/// A nested object whose own fields are all lenient: a non-object reads as absent.
struct ObjectVisitor<T>(PhantomData<T>);
impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }
    absent_for!(seq, str, i64, u64, bool, f64, unit, none);
}

/// Element wrapper so sequences can hold lenient items.
struct Lax<T>(Option<T>);
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lax<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor::<T>(PhantomData)).map(Lax)
    }
}
struct LaxString(Option<String>);
impl<'de> Deserialize<'de> for LaxString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringVisitor).map(LaxString)
    }
}

fn lax_string<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(d.deserialize_any(StringVisitor)?.map(Cow::Owned))
}

fn lax_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(IntVisitor)
}

fn lax_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(BoolVisitor)
}

fn lax_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_any(ObjectVisitor::<T>(PhantomData))
}

fn lax_object_list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    struct ListVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
        type Value = Option<Vec<T>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any value")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Lax(item)) = seq.next_element::<Lax<T>>()? {
                out.extend(item);
            }
            Ok(Some(out))
        }
        absent_for!(str, i64, u64, map, bool, f64, unit, none);
    }
    d.deserialize_any(ListVisitor::<T>(PhantomData))
}

/// A `map[string]string` (annotations, labels). Entries whose value is not a string are
/// left out: the apiserver never sends them, and lint reports them itself.
fn lax_string_map<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<StringMap<'a>>, D::Error> {
    struct MapVisitor<'a>(PhantomData<&'a ()>);
    impl<'de, 'a> Visitor<'de> for MapVisitor<'a> {
        type Value = Option<StringMap<'a>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, LaxString(value))) = map.next_entry::<String, LaxString>()? {
                if let Some(value) = value {
                    out.insert(Cow::Owned(key), Cow::Owned(value));
                }
            }
            Ok(Some(out))
        }
        absent_for!(seq, str, i64, u64, bool, f64, unit, none);
    }
    d.deserialize_any(MapVisitor(PhantomData))
}

fn lax_string_list<'de, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Cow<'a, str>>>, D::Error> {
    struct ListVisitor<'a>(PhantomData<&'a ()>);
    impl<'de, 'a> Visitor<'de> for ListVisitor<'a> {
        type Value = Option<Vec<Cow<'a, str>>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any value")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(LaxString(item)) = seq.next_element::<LaxString>()? {
                out.extend(item.map(Cow::Owned));
            }
            Ok(Some(out))
        }
        absent_for!(map, str, i64, u64, bool, f64, unit, none);
    }
    d.deserialize_any(ListVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_job() {
        let job: HookObject = serde_json::from_str(
            r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"m","annotations":{"a":"b"},
            "finalizers":["x"]},"spec":{"ttlSecondsAfterFinished":0,"template":{"spec":
            {"restartPolicy":"Never","containers":[{"name":"c","securityContext":{"privileged":true}}]}}}}"#,
        )
        .unwrap();
        assert!(job.is_kind("batch", "Job"));
        assert_eq!(job.annotation("a"), Some("b"));
        assert_eq!(
            job.spec.as_ref().unwrap().ttl_seconds_after_finished,
            Some(0)
        );
        let pod = job.pod_spec().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            pod.containers.as_ref().unwrap()[0]
                .security_context
                .as_ref()
                .unwrap()
                .privileged,
            Some(true)
        );
    }

    #[test]
    fn wrong_types_read_as_absent_not_as_errors() {
        let obj: HookObject = serde_json::from_str(
            r#"{"apiVersion":7,"kind":["Job"],"metadata":{"name":{"x":1},"annotations":{"a":5,"b":"ok","c":null},
            "labels":"nope","finalizers":[1,"f",{}]},"spec":{"ttlSecondsAfterFinished":"0","template":[1,2],
            "containers":{"a":1},"securityContext":5}}"#,
        )
        .unwrap();
        assert_eq!(obj.api_version, None);
        assert_eq!(obj.kind, None);
        let meta = obj.metadata.as_ref().unwrap();
        assert_eq!(meta.name, None);
        assert_eq!(meta.annotations.as_ref().unwrap().len(), 1);
        assert_eq!(meta.labels, None);
        assert_eq!(meta.finalizers.as_deref(), Some(&[Cow::from("f")][..]));
        let spec = obj.spec.as_ref().unwrap();
        assert_eq!(spec.ttl_seconds_after_finished, None);
        assert!(spec.template.is_none());
        assert!(spec.containers.is_none());
    }

    #[test]
    fn metadata_not_an_object() {
        let obj: HookObject = serde_json::from_str(r#"{"metadata":"x","spec":null}"#).unwrap();
        assert!(obj.metadata.is_none());
        assert!(obj.annotations().is_none());
    }
}
