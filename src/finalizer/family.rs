//! generateName families: hooks of one kind, namespace, application and `generateName`.
//! Argo CD's BeforeHookCreation never removes older members of such a family (reference
//! §2.2), so hookguard keeps only the newest N. The index is fed by the same watch events as
//! the cache, so ranking a hook costs a lookup, not a scan of all hooks.

use super::observe::{app_of, observe, StatusReader};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FamilyKey {
    pub namespace: String,
    pub generate_name: String,
    pub app: Option<String>,
}

type ObjectKey = (String, String);

#[derive(Debug, Default)]
struct Members {
    /// family → name → creation time.
    families: HashMap<FamilyKey, HashMap<String, Option<Timestamp>>>,
    of: HashMap<ObjectKey, FamilyKey>,
}

impl Members {
    fn remove(&mut self, key: &ObjectKey) {
        if let Some(family) = self.of.remove(key) {
            if let Some(members) = self.families.get_mut(&family) {
                members.remove(&key.1);
                if members.is_empty() {
                    self.families.remove(&family);
                }
            }
        }
    }

    fn upsert(&mut self, reader: StatusReader, obj: &DynamicObject) {
        let Some(key) = object_key(obj) else { return };
        self.remove(&key);
        let observed = observe(reader, obj);
        if !observed.in_family() {
            return;
        }
        let Some(generate_name) = observed.generate_name else {
            return;
        };
        let family = FamilyKey {
            namespace: key.0.clone(),
            generate_name,
            app: app_of(obj).map(str::to_owned),
        };
        self.families
            .entry(family.clone())
            .or_default()
            .insert(key.1.clone(), observed.created);
        self.of.insert(key, family);
    }
}

fn object_key(obj: &DynamicObject) -> Option<ObjectKey> {
    Some((
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone()?,
    ))
}

/// The family index of one kind.
#[derive(Debug)]
pub struct FamilyIndex {
    reader: StatusReader,
    live: Members,
    /// Filled between `Init` and `InitDone` (a relist), then swapped in.
    relist: Option<Members>,
}

impl FamilyIndex {
    pub fn new(reader: StatusReader) -> FamilyIndex {
        FamilyIndex {
            reader,
            live: Members::default(),
            relist: None,
        }
    }

    pub fn apply(&mut self, event: &Event<DynamicObject>) {
        match event {
            Event::Apply(obj) => self.live.upsert(self.reader, obj),
            Event::Delete(obj) => {
                if let Some(key) = object_key(obj) {
                    self.live.remove(&key);
                }
            }
            Event::Init => self.relist = Some(Members::default()),
            Event::InitApply(obj) => {
                if let Some(relist) = self.relist.as_mut() {
                    relist.upsert(self.reader, obj);
                } else {
                    self.live.upsert(self.reader, obj);
                }
            }
            Event::InitDone => {
                if let Some(relist) = self.relist.take() {
                    self.live = relist;
                }
            }
        }
    }

    fn ordered(&self, family: &FamilyKey) -> Vec<&String> {
        let Some(members) = self.live.families.get(family) else {
            return Vec::new();
        };
        let mut all: Vec<(&Option<Timestamp>, &String)> =
            members.iter().map(|(n, c)| (c, n)).collect();
        // Newest first; the name breaks ties (same second) deterministically.
        all.sort_by(|a, b| b.cmp(a));
        all.into_iter().map(|(_, n)| n).collect()
    }

    /// Position of the object in its family, newest first, and the names of the members past
    /// `keep` (they may have become deletable because this one arrived).
    pub fn rank(
        &self,
        namespace: &str,
        name: &str,
        keep: Option<usize>,
    ) -> Option<(usize, Vec<String>)> {
        let family = self.live.of.get(&(namespace.to_owned(), name.to_owned()))?;
        let ordered = self.ordered(family);
        let rank = ordered.iter().position(|n| n.as_str() == name)?;
        let beyond = match keep {
            Some(keep) => ordered.iter().skip(keep).map(|n| (*n).clone()).collect(),
            None => Vec::new(),
        };
        Some((rank, beyond))
    }

    pub fn family_count(&self) -> usize {
        self.live.families.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(name: &str, created: &str, generate_name: &str, policy: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ns", "generateName": generate_name,
                         "creationTimestamp": created,
                         "labels": {"hookguard.io/managed": "true"},
                         "annotations": {"argocd.argoproj.io/hook": "PostSync",
                                         "argocd.argoproj.io/hook-delete-policy": policy}},
        }))
        .expect("object")
    }

    #[test]
    fn ranks_newest_first() {
        let mut idx = FamilyIndex::new(StatusReader::Job);
        idx.apply(&Event::Apply(member(
            "m-1",
            "2024-01-01T00:00:01Z",
            "m-",
            "BeforeHookCreation",
        )));
        idx.apply(&Event::Apply(member(
            "m-3",
            "2024-01-01T00:00:03Z",
            "m-",
            "BeforeHookCreation",
        )));
        idx.apply(&Event::Apply(member(
            "m-2",
            "2024-01-01T00:00:02Z",
            "m-",
            "BeforeHookCreation",
        )));
        // Other family, and a HookSucceeded-only hook that is in no family.
        idx.apply(&Event::Apply(member(
            "x-1",
            "2024-01-01T00:00:09Z",
            "x-",
            "BeforeHookCreation",
        )));
        idx.apply(&Event::Apply(member(
            "m-9",
            "2024-01-01T00:00:09Z",
            "m-",
            "HookSucceeded",
        )));
        assert_eq!(
            idx.rank("ns", "m-3", Some(1)),
            Some((0, vec!["m-2".into(), "m-1".into()]))
        );
        assert_eq!(idx.rank("ns", "m-1", None).map(|r| r.0), Some(2));
        assert_eq!(idx.rank("ns", "x-1", Some(1)), Some((0, vec![])));
        assert_eq!(idx.rank("ns", "m-9", Some(1)), None);
        assert_eq!(idx.family_count(), 2);

        idx.apply(&Event::Delete(member(
            "m-3",
            "2024-01-01T00:00:03Z",
            "m-",
            "BeforeHookCreation",
        )));
        assert_eq!(idx.rank("ns", "m-1", None).map(|r| r.0), Some(1));
    }

    #[test]
    fn relist_replaces_the_index() {
        let mut idx = FamilyIndex::new(StatusReader::Job);
        idx.apply(&Event::Apply(member(
            "m-1",
            "2024-01-01T00:00:01Z",
            "m-",
            "BeforeHookCreation",
        )));
        idx.apply(&Event::Init);
        idx.apply(&Event::InitApply(member(
            "m-2",
            "2024-01-01T00:00:02Z",
            "m-",
            "BeforeHookCreation",
        )));
        // Until InitDone the old view stays.
        assert!(idx.rank("ns", "m-1", None).is_some());
        idx.apply(&Event::InitDone);
        assert!(
            idx.rank("ns", "m-1", None).is_none(),
            "m-1 vanished during the relist"
        );
        assert_eq!(idx.rank("ns", "m-2", None).map(|r| r.0), Some(0));
    }

    #[test]
    fn deleting_members_leave_the_family() {
        let mut idx = FamilyIndex::new(StatusReader::Job);
        idx.apply(&Event::Apply(member(
            "m-1",
            "2024-01-01T00:00:01Z",
            "m-",
            "BeforeHookCreation",
        )));
        let mut gone = member("m-1", "2024-01-01T00:00:01Z", "m-", "BeforeHookCreation");
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2024-01-01T00:00:05Z".parse().expect("ts"),
            ));
        idx.apply(&Event::Apply(gone));
        assert!(idx.rank("ns", "m-1", None).is_none());
        assert_eq!(idx.family_count(), 0);
    }
}
