//! Policy parsing, precedence, the mode × action matrix, namespace selection, invalid files,
//! the committed schema and rules doc, reload (also under concurrent requests), and the
//! webhook honouring the policy end to end in-process.

use super::*;
use crate::admission::{review, AdmissionConfig, Webhook};
use crate::rules::Finding;
use rstest::rstest;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

fn parse(yaml: &str) -> Policy {
    Policy::from_yaml(yaml, "policy.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn known<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> NamespaceRef<'a> {
    NamespaceRef::new(name, Labels::Known(labels))
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

fn in_ns(name: &str) -> NamespaceRef<'_> {
    known(name, &NO_LABELS)
}

fn effect(p: &Policy, rule: RuleId, ns: &str) -> Effect {
    p.resolve(rule, &in_ns(ns)).effect
}

fn finding(rule: RuleId) -> Finding {
    Finding {
        rule,
        annotation: None,
        message: format!("{rule} fired"),
    }
}

// ---- precedence -------------------------------------------------------------------------

#[test]
fn rule_default_then_global_mode_then_namespace_override() {
    // unknown-hook-type defaults to deny, job-ttl-race to warn, privileged-hook to off.
    let defaults = Policy::default();
    assert_eq!(
        effect(&defaults, RuleId::UnknownHookType, "a"),
        Effect::Deny
    );
    assert_eq!(effect(&defaults, RuleId::JobTtlRace, "a"), Effect::Warn);
    assert_eq!(effect(&defaults, RuleId::PrivilegedHook, "a"), Effect::Off);

    // The global mode beats the rule default.
    let p = parse("mode: warn\n");
    assert_eq!(effect(&p, RuleId::UnknownHookType, "a"), Effect::Warn);
    assert!(p.resolve(RuleId::UnknownHookType, &in_ns("a")).would_deny());

    // A namespace override beats the global mode, and only where it matches.
    let p = parse("mode: warn\nnamespaces:\n  - names: [prod-*]\n    mode: enforce\n");
    assert_eq!(
        effect(&p, RuleId::UnknownHookType, "prod-shop"),
        Effect::Deny
    );
    assert_eq!(
        effect(&p, RuleId::UnknownHookType, "dev-shop"),
        Effect::Warn
    );

    // Global rule actions beat defaults; namespace rule actions beat global ones.
    let p = parse(
        "rules: {job-ttl-race: deny, unknown-hook-type: warn}\n\
         namespaces:\n  - names: [legacy]\n    rules: {job-ttl-race: off}\n",
    );
    assert_eq!(effect(&p, RuleId::JobTtlRace, "other"), Effect::Deny);
    assert_eq!(effect(&p, RuleId::JobTtlRace, "legacy"), Effect::Off);
    assert_eq!(effect(&p, RuleId::UnknownHookType, "legacy"), Effect::Warn);
    // Rules neither layer lists keep the catalogue default.
    assert_eq!(effect(&p, RuleId::InvalidSyncWave, "legacy"), Effect::Deny);
}

#[test]
fn mode_applies_to_the_action_whichever_layer_set_it() {
    // A namespace that turns a rule to deny in a warn-mode cluster still only warns, unless
    // it also sets `mode: enforce` (the documented worked example).
    let p = parse(
        "mode: warn\nnamespaces:\n  - names: [team-a]\n    rules: {missing-delete-policy: deny}\n\
         \x20 - names: [team-b]\n    mode: enforce\n    rules: {missing-delete-policy: deny}\n",
    );
    let r = p.resolve(RuleId::MissingDeletePolicy, &in_ns("team-a"));
    assert_eq!(
        (r.action, r.mode, r.effect),
        (Action::Deny, Mode::Warn, Effect::Warn)
    );
    let r = p.resolve(RuleId::MissingDeletePolicy, &in_ns("team-b"));
    assert_eq!(
        (r.action, r.mode, r.effect),
        (Action::Deny, Mode::Enforce, Effect::Deny)
    );
    let r = p.resolve(RuleId::MissingDeletePolicy, &in_ns("team-c"));
    assert_eq!((r.action, r.effect), (Action::Off, Effect::Off));
}

#[test]
fn later_matching_override_wins_field_by_field() {
    let p = parse(
        "namespaces:\n\
         \x20 - names: ['*']\n    mode: audit\n    rules: {job-ttl-race: deny}\n\
         \x20 - names: [prod-*]\n    mode: enforce\n",
    );
    // prod-x: mode from the second, job-ttl-race from the first.
    let r = p.resolve(RuleId::JobTtlRace, &in_ns("prod-x"));
    assert_eq!(
        (r.action, r.mode, r.effect),
        (Action::Deny, Mode::Enforce, Effect::Deny)
    );
    let r = p.resolve(RuleId::JobTtlRace, &in_ns("dev"));
    assert_eq!((r.mode, r.effect), (Mode::Audit, Effect::Audit));
}

// ---- every mode × action ----------------------------------------------------------------

#[rstest]
fn mode_by_action_matrix(
    #[values(Mode::Enforce, Mode::Warn, Mode::Audit)] mode: Mode,
    #[values(Action::Deny, Action::Warn, Action::Off)] action: Action,
    #[values(false, true)] via_namespace: bool,
) {
    let expected = match (mode, action) {
        (_, Action::Off) => Effect::Off,
        (Mode::Enforce, Action::Deny) => Effect::Deny,
        (Mode::Enforce, Action::Warn) | (Mode::Warn, _) => Effect::Warn,
        (Mode::Audit, _) => Effect::Audit,
    };
    // Set mode and action either globally, or in a namespace override on top of a global
    // setting that is different from both.
    let yaml = if via_namespace {
        let other_mode = if mode == Mode::Audit {
            "enforce"
        } else {
            "audit"
        };
        let other_action = if action == Action::Off { "deny" } else { "off" };
        format!(
            "mode: {other_mode}\nrules: {{job-ttl-race: {other_action}}}\n\
             namespaces:\n  - names: [ns]\n    mode: {mode}\n    rules: {{job-ttl-race: {action}}}\n"
        )
    } else {
        format!("mode: {mode}\nrules: {{job-ttl-race: {action}}}\n")
    };
    let p = parse(&yaml);
    let r = p.resolve(RuleId::JobTtlRace, &in_ns("ns"));
    assert_eq!(
        r,
        Resolved {
            action,
            mode,
            effect: expected
        },
        "{yaml}"
    );

    let v = verdict(&[finding(RuleId::JobTtlRace)], &p, &in_ns("ns"));
    let counts = (v.denials.len(), v.warnings.len(), v.audits.len());
    let want = match expected {
        Effect::Deny => (1, 0, 0),
        Effect::Warn => (0, 1, 0),
        Effect::Audit => (0, 0, 1),
        Effect::Off => (0, 0, 0),
    };
    assert_eq!(counts, want, "{yaml}");
    assert_eq!(v.allowed(), expected != Effect::Deny);
    let would: Vec<RuleId> = v.would_deny().collect();
    let softened = action == Action::Deny && mode != Mode::Enforce;
    assert_eq!(
        would,
        if softened {
            vec![RuleId::JobTtlRace]
        } else {
            vec![]
        }
    );
}

// ---- namespace selection ----------------------------------------------------------------

#[test]
fn overrides_select_by_glob_labels_or_both() {
    let p = parse(
        "namespaces:\n\
         \x20 - names: [team-*, payments]\n    rules: {job-ttl-race: deny}\n\
         \x20 - labels: {tier: relaxed}\n    mode: warn\n\
         \x20 - names: [shop-*]\n    labels: {pci: 'true'}\n    rules: {privileged-hook: deny}\n",
    );
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let none = labels(&[]);
    assert_eq!(
        p.resolve(RuleId::JobTtlRace, &known("team-x", &none))
            .effect,
        Effect::Deny
    );
    assert_eq!(
        p.resolve(RuleId::JobTtlRace, &known("payments", &none))
            .effect,
        Effect::Deny
    );
    assert_eq!(
        p.resolve(RuleId::JobTtlRace, &known("payments-2", &none))
            .effect,
        Effect::Warn
    );

    let relaxed = labels(&[("tier", "relaxed"), ("other", "x")]);
    assert_eq!(
        p.resolve(RuleId::UnknownHookType, &known("any", &relaxed))
            .effect,
        Effect::Warn
    );
    let strict = labels(&[("tier", "strict")]);
    assert_eq!(
        p.resolve(RuleId::UnknownHookType, &known("any", &strict))
            .effect,
        Effect::Deny
    );

    let pci = labels(&[("pci", "true")]);
    assert_eq!(
        p.resolve(RuleId::PrivilegedHook, &known("shop-eu", &pci))
            .effect,
        Effect::Deny
    );
    assert_eq!(
        p.resolve(RuleId::PrivilegedHook, &known("blog", &pci))
            .effect,
        Effect::Off
    );
    assert_eq!(
        p.resolve(RuleId::PrivilegedHook, &known("shop-eu", &none))
            .effect,
        Effect::Off
    );
}

#[test]
fn unknown_labels_resolve_as_strictly_as_possible() {
    let p = parse(
        "namespaces:\n\
         \x20 - labels: {tier: relaxed}\n    mode: warn\n\
         \x20 - labels: {pci: 'true'}\n    rules: {privileged-hook: deny}\n\
         \x20 - names: [legacy]\n    rules: {job-ttl-race: off}\n",
    );
    let unknown = |name| NamespaceRef::new(name, Labels::Unknown);
    // The relaxing override is not assumed; the tightening one is.
    assert_eq!(
        p.resolve(RuleId::UnknownHookType, &unknown("x")).effect,
        Effect::Deny
    );
    assert_eq!(
        p.resolve(RuleId::PrivilegedHook, &unknown("x")).effect,
        Effect::Deny
    );
    // Name-only overrides still apply as usual.
    assert_eq!(
        p.resolve(RuleId::JobTtlRace, &unknown("legacy")).effect,
        Effect::Off
    );
    assert!(p.uses_namespace_labels());
    assert!(!parse("mode: warn").uses_namespace_labels());
}

// ---- invalid files ----------------------------------------------------------------------

#[rstest]
#[case::unknown_top_level_key(
    "mode: enforce\nrulez: {}\n",
    "policy.yaml:2:1: unknown field `rulez`, expected one of mode, rules, namespaces, mutation, cleanup"
)]
#[case::bad_mode(
    "mode: strict\n",
    "policy.yaml:1:7: unknown variant `strict`, expected one of enforce, warn, audit"
)]
#[case::bad_action(
    "rules:\n  job-ttl-race: block\n",
    "policy.yaml:2:17: unknown variant `block`, expected one of deny, warn, off"
)]
#[case::unknown_rule("rules:\n  unknown-hook-typ: deny\n", "policy.yaml:2:3: unknown rule `unknown-hook-typ`; known rules: unknown-hook-type, unknown-delete-policy")]
#[case::duplicate_rule(
    "rules:\n  job-ttl-race: deny\n  job-ttl-race: off\n",
    "policy.yaml:3:3: duplicate mapping key: job-ttl-race"
)]
#[case::override_unknown_key(
    "namespaces:\n  - names: [a]\n    mode: warn\n    foo: 1\n",
    "policy.yaml:4:5: unknown field `foo`, expected one of names, labels, mode, rules"
)]
#[case::override_bad_mode(
    "namespaces:\n  - names: [a]\n    mode: x\n",
    "policy.yaml:3:11: unknown variant `x`"
)]
#[case::override_without_selector(
    "namespaces:\n  - mode: warn\n",
    "policy.yaml:2:5: a namespace override needs `names` (globs) and/or `labels`"
)]
#[case::override_without_effect(
    "namespaces:\n  - names: [a]\n",
    "policy.yaml:2:5: a namespace override sets neither `mode` nor `rules`"
)]
#[case::bad_glob(
    "namespaces:\n  - names: [Prod_*]\n    mode: warn\n",
    "policy.yaml:2:5: namespace name glob `Prod_*` has `P`"
)]
#[case::bad_mutation_key(
    "mutation:\n  translate: false\n",
    "policy.yaml:2:3: unknown field `translate`, expected one of translateHelm, explicitDefaultPolicy, managedLabel, finalizer, kinds"
)]
#[case::bad_kind(
    "mutation:\n  kinds: [job]\n",
    "policy.yaml:2:11: `job` is not a kind: write Kind.group"
)]
#[case::bad_duration(
    "cleanup:\n  failedGrace: soon\n",
    "policy.yaml:2:16: `soon` is not a duration: write e.g. 90s, 15m, 2h or 7d"
)]
#[case::bad_cleanup_key(
    "cleanup:\n  keepLast: 3\n",
    "policy.yaml:2:3: unknown field `keepLast`, expected one of succeededGrace, failedGrace, keepNewest, maxAge, maxHold"
)]
#[case::not_a_mapping("- mode\n", "policy.yaml:1:1:")]
#[case::syntax_error("mode: [\n", "policy.yaml:1:7:")]
#[case::empty(
    "# nothing\n\n",
    "policy.yaml: the policy file is empty; write at least `mode: enforce`"
)]
fn invalid_files_are_rejected_with_line_and_reason(#[case] yaml: &str, #[case] expected: &str) {
    let e = Policy::from_yaml(yaml, "policy.yaml")
        .expect_err(yaml)
        .to_string();
    assert!(e.starts_with(expected), "\n got: {e}\nwant: {expected}…");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn not_utf8_is_a_read_error() {
    let e = ActivePolicy::parse(&[0xff, 0xfe, b'a'], "p.yaml").unwrap_err();
    assert!(
        e.to_string().starts_with("p.yaml: cannot read: not UTF-8"),
        "{e}"
    );
}

// ---- the full file, defaults, round trip ------------------------------------------------

const FULL: &str = "\
# a platform team's policy
mode: warn
rules:
  missing-delete-policy: warn
  job-ttl-race: deny
namespaces:
  - names: [prod-*, payments]
    mode: enforce
  - labels: {hookguard.io/profile: relaxed}
    rules: {pod-never-completes: warn}
mutation:
  finalizer: false
  kinds: [Job.batch, Pod]
cleanup:
  failedGrace: 2h
  keepNewest: null
  maxAge: 7d
";

#[test]
fn full_file_parses_with_defaults_filled_in() {
    let p = parse(FULL);
    assert_eq!(p.mode, Mode::Warn);
    assert_eq!(p.namespaces.len(), 2);
    let m = p.mutation.settings();
    assert!(m.translate_helm && m.explicit_default_policy && m.mark_managed && !m.add_finalizer);
    assert_eq!(
        m.managed_kinds,
        vec![KindRef::new("batch", "Job"), KindRef::new("", "Pod")]
    );
    let c = &p.cleanup;
    assert_eq!(c.succeeded_grace.0, Duration::from_secs(60));
    assert_eq!(c.failed_grace.0, Duration::from_secs(7200));
    assert_eq!(c.keep_newest, None);
    assert_eq!(
        c.max_age.map(|d| d.0),
        Some(Duration::from_secs(7 * 86_400))
    );
    assert_eq!(c.max_hold.0, Duration::from_secs(300));
    assert_eq!(Policy::default().cleanup.keep_newest, Some(5));
    assert_eq!(
        Policy::default().mutation.settings(),
        MutationSettings::default()
    );
}

#[test]
fn effective_policy_round_trips_and_lists_every_rule() {
    let p = parse(FULL);
    let yaml = p.effective().to_yaml();
    for rule in RuleId::ALL {
        assert!(
            yaml.contains(&format!("  {rule}: ")),
            "{rule} missing:\n{yaml}"
        );
    }
    let again = Policy::from_yaml(&yaml, "effective").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again, p.effective());
    // Resolution is unchanged by writing the defaults out.
    for rule in RuleId::ALL {
        for ns in ["prod-a", "dev", "payments"] {
            assert_eq!(
                again.resolve(*rule, &in_ns(ns)),
                p.resolve(*rule, &in_ns(ns))
            );
        }
    }
}

// ---- committed artefacts ----------------------------------------------------------------

fn committed(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_default()
}

#[test]
fn committed_schema_is_up_to_date() {
    assert!(
        committed("schema/policy.schema.json") == schema::policy_schema_json(),
        "schema/policy.schema.json is stale: run `make schema` \
         (cargo run -q -- policy schema > schema/policy.schema.json)"
    );
}

#[test]
fn committed_rules_doc_is_up_to_date() {
    assert!(
        committed("docs/rules.md") == docs::rules_markdown(),
        "docs/rules.md is stale: run `make docs` (cargo run -q -- policy docs > docs/rules.md)"
    );
}

#[test]
fn schema_describes_every_rule_and_rejects_unknown_keys() {
    let s: Value = serde_json::from_str(&schema::policy_schema_json()).unwrap();
    assert_eq!(s["additionalProperties"], false);
    let rules = &s["properties"]["rules"];
    assert_eq!(rules["additionalProperties"], false);
    for rule in RuleId::ALL {
        assert!(rules["properties"].get(rule.name()).is_some(), "{rule}");
    }
    let ns = &s["$defs"]["NamespaceOverride"];
    assert_eq!(ns["additionalProperties"], false);
    assert_eq!(
        ns["anyOf"],
        json!([{"required": ["names"]}, {"required": ["labels"]}])
    );
    for def in ["MutationPolicy", "CleanupPolicy"] {
        assert_eq!(s["$defs"][def]["additionalProperties"], false, "{def}");
    }
}

#[test]
fn every_rule_is_documented_and_explained() {
    let md = docs::rules_markdown();
    for rule in RuleId::ALL {
        let i = rule.info();
        assert!(
            md.contains(&format!("## `{}`", i.name)) && md.contains(i.why),
            "{rule}"
        );
        let text = docs::explain(*rule);
        assert!(text.contains(i.summary) && text.contains(i.why) && text.contains(i.fix));
    }
}

// ---- the store: reload ------------------------------------------------------------------

fn store() -> PolicyStore<AdmissionConfig> {
    PolicyStore::new(ActivePolicy::defaults(), |p| {
        AdmissionConfig::from_policy(p.clone())
    })
}

#[test]
fn a_bad_reload_keeps_the_previous_policy_and_is_reported() {
    use store::ReloadOutcome;
    let s = store();
    let first = s.status();
    assert_eq!(first.hash, store::sha256_hex(b""));
    assert_eq!((first.reloads_ok, first.reloads_failed), (0, 0));

    let good = b"mode: audit\n".to_vec();
    assert!(matches!(
        s.offer(Ok(good.clone()), "p"),
        ReloadOutcome::Applied { .. }
    ));
    assert_eq!(s.current().policy.policy.mode, Mode::Audit);
    let hash = s.status().hash;
    assert_eq!(hash, store::sha256_hex(&good));
    assert_eq!(hash.len(), 64);

    // Broken: rejected, counted once however often it is polled, previous policy in force.
    for _ in 0..3 {
        let out = s.offer(Ok(b"mode: off\n".to_vec()), "p");
        assert!(matches!(
            out,
            ReloadOutcome::Rejected { .. } | ReloadOutcome::Unchanged
        ));
    }
    let st = s.status();
    assert_eq!((st.reloads_ok, st.reloads_failed), (1, 1));
    assert_eq!(st.hash, hash);
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("p:1:7: unknown variant `off`"),
        "{st:?}"
    );
    assert_eq!(s.current().policy.policy.mode, Mode::Audit);

    // A missing file is a failed reload too, and keeps the policy.
    let missing = Err(PolicyError::Read {
        source_name: "p".into(),
        message: "gone".into(),
    });
    assert!(matches!(
        s.offer(missing.clone(), "p"),
        ReloadOutcome::Rejected { .. }
    ));
    assert!(matches!(s.offer(missing, "p"), ReloadOutcome::Unchanged));
    assert_eq!(s.status().reloads_failed, 2);
    assert_eq!(s.current().policy.policy.mode, Mode::Audit);

    // Same content as active: nothing happens, the error is cleared.
    assert_eq!(s.offer(Ok(good), "p"), ReloadOutcome::Unchanged);
    assert_eq!(s.status().last_error, None);
    assert!(matches!(
        s.offer(Ok(b"mode: warn".to_vec()), "p"),
        ReloadOutcome::Applied { .. }
    ));
    assert_eq!(s.status().reloads_ok, 2);
    assert_eq!(s.current().policy.policy.mode, Mode::Warn);
}

fn fixture(n: u32) -> Value {
    let path = format!(
        "{}/tests/fixtures/admission/kube-apiserver-1.20.2/{n}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("JSON")
}

/// A CREATE of a Job in `namespace` with a typo'd hook type and a garbage sync wave: two
/// rules that deny by default.
fn two_denials(namespace: &str) -> Vec<u8> {
    let mut r = fixture(2);
    r["request"]["namespace"] = json!(namespace);
    r["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    r["request"]["object"]["metadata"]["annotations"] =
        json!({"argocd.argoproj.io/hook": "presync", "argocd.argoproj.io/sync-wave": "one"});
    serde_json::to_vec(&r).unwrap()
}

fn response(out: &crate::admission::Outcome) -> Value {
    serde_json::from_slice::<Value>(&out.body).expect("JSON")["response"].clone()
}

#[test]
fn a_threads_copy_of_the_policy_follows_every_reload() {
    let mode = |s: &PolicyStore<AdmissionConfig>| s.with_current(|c| c.policy.policy.mode);
    let (s, other) = (store(), store());
    let default = mode(&s);
    assert_eq!(mode(&other), default);
    for (i, text) in ["mode: audit\n", "mode: warn\n", "mode: audit\n"]
        .iter()
        .enumerate()
    {
        s.offer(Ok(text.as_bytes().to_vec()), "p");
        let want = s.current().policy.policy.mode;
        assert_ne!(want, default, "{i}");
        // On this thread, which holds a copy from before the reload, and on a new one.
        assert_eq!(mode(&s), want, "{i}");
        std::thread::scope(|t| assert_eq!(t.spawn(|| mode(&s)).join().unwrap(), want));
        // A store's reload is not another's.
        assert_eq!(mode(&other), default, "{i}");
    }
    // More stores than a thread keeps copies of: each still answers with its own policy.
    let many: Vec<_> = (0..6).map(|_| store()).collect();
    many[3].offer(Ok(b"mode: warn\n".to_vec()), "p");
    for _ in 0..2 {
        for (i, m) in many.iter().enumerate() {
            let want = if i == 3 { Mode::Warn } else { default };
            assert_eq!(mode(m), want, "{i}");
        }
    }
    // Nested use of the copies falls back to the store itself.
    assert_eq!(s.with_current(|_| mode(&other)), default);
}

#[test]
fn reload_under_concurrent_requests_never_mixes_two_policies() {
    // Policy A denies both rules; policy B warns on one and turns the other off. A request
    // that saw half of each would deny one and warn the other, or warn with A's hash.
    let a = b"mode: enforce\n".to_vec();
    let b = b"rules: {unknown-hook-type: warn, invalid-sync-wave: off}\n".to_vec();
    let (hash_a, hash_b) = (
        store::sha256_hex(&a)[..12].to_owned(),
        store::sha256_hex(&b)[..12].to_owned(),
    );
    let s = Arc::new(store());
    s.offer(Ok(a.clone()), "p");
    let body = Arc::new(two_denials("hooks-lab"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut seen = std::collections::HashSet::new();
    std::thread::scope(|scope| {
        let swapper = scope.spawn(|| {
            for i in 0..400 {
                s.offer(Ok(if i % 2 == 0 { b.clone() } else { a.clone() }), "p");
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (s, body, stop) = (s.clone(), body.clone(), stop.clone());
                let (hash_a, hash_b) = (hash_a.clone(), hash_b.clone());
                scope.spawn(move || {
                    let mut seen = std::collections::HashSet::new();
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) || n < 50 {
                        n += 1;
                        // The server's way to the policy: this thread's copy, while current.
                        let out = s.with_current(|config| review(Webhook::Validate, &body, config));
                        let v = response(&out);
                        let d = &out.decision;
                        if v["allowed"] == false {
                            let msg = v["status"]["message"].as_str().unwrap_or("");
                            assert!(
                                msg.contains("[unknown-hook-type]")
                                    && msg.contains("[invalid-sync-wave]"),
                                "{msg}"
                            );
                            assert!(v.get("warnings").is_none(), "{v}");
                            assert_eq!(d.policy_hash.as_str(), hash_a);
                            seen.insert('A');
                        } else {
                            let w = v["warnings"].as_array().expect("warnings");
                            assert_eq!(w.len(), 1, "{v}");
                            assert!(w[0]
                                .as_str()
                                .unwrap_or("")
                                .starts_with("[unknown-hook-type]"));
                            assert_eq!(d.policy_hash.as_str(), hash_b);
                            seen.insert('B');
                        }
                    }
                    seen
                })
            })
            .collect();
        swapper.join().expect("swapper");
        for r in readers {
            seen.extend(r.join().expect("reader"));
        }
    });
    assert_eq!(s.status().reloads_ok, 401);
    // Not a timing claim: with 400 swaps both policies are practically always observed, but
    // the assertion that matters is the per-response consistency above.
    assert!(!seen.is_empty());
}

// ---- the file watcher (ConfigMap-style symlink swap) ------------------------------------

/// Lays out a directory like a ConfigMap volume: policy.yaml -> ..data/policy.yaml,
/// ..data -> ..<version>/.
fn configmap_write(dir: &std::path::Path, version: &str, content: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap();
    std::fs::write(versioned.join("policy.yaml"), content).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join("policy.yaml");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/policy.yaml", &link).unwrap();
    }
}

#[tokio::test]
async fn watcher_follows_configmap_symlink_swaps_and_survives_bad_versions() {
    let dir = tempfile::tempdir().unwrap();
    configmap_write(dir.path(), "v1", "mode: enforce\n");
    let path = dir.path().join("policy.yaml");
    let bytes = watch::read(&path).await.unwrap();
    let s = Arc::new(PolicyStore::new(
        ActivePolicy::parse(&bytes, "p").unwrap(),
        |p| AdmissionConfig::from_policy(p.clone()),
    ));
    let applied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(watch::run(
        s.clone(),
        path.clone(),
        Duration::from_millis(20),
        {
            let applied = applied.clone();
            move |_: &PolicyStore<AdmissionConfig>| {
                applied.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        },
        async {
            let _ = rx.await;
        },
    ));
    let wait_for = |want: &'static dyn Fn(&PolicyStatus) -> bool| {
        let s = s.clone();
        async move {
            for _ in 0..500 {
                if want(&s.status()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("timed out; status {:?}", s.status());
        }
    };

    configmap_write(dir.path(), "v2", "mode: audit\n");
    wait_for(&|st| st.reloads_ok == 1).await;
    assert_eq!(s.current().policy.policy.mode, Mode::Audit);

    configmap_write(dir.path(), "v3", "mode: audit\nrules: {nope: deny}\n");
    wait_for(&|st| st.reloads_failed == 1).await;
    assert_eq!(
        s.current().policy.policy.mode,
        Mode::Audit,
        "a bad reload keeps the policy"
    );
    assert!(s
        .status()
        .last_error
        .unwrap()
        .contains("unknown rule `nope`"));

    configmap_write(dir.path(), "v4", "mode: warn\n");
    wait_for(&|st| st.reloads_ok == 2 && st.last_error.is_none()).await;
    assert_eq!(s.current().policy.policy.mode, Mode::Warn);
    assert_eq!(applied.load(std::sync::atomic::Ordering::SeqCst), 2);

    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("watcher stops")
        .unwrap();
}

// ---- the webhook honours the policy end to end (in-process) -----------------------------

fn config(yaml: &str, labels: &[(&str, &[(&str, &str)])]) -> AdmissionConfig {
    let mut c =
        AdmissionConfig::from_policy(Arc::new(ActivePolicy::parse(yaml.as_bytes(), "p").unwrap()));
    let table: HashMap<String, BTreeMap<String, String>> = labels
        .iter()
        .map(|(ns, l)| {
            (
                ns.to_string(),
                l.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })
        .collect();
    c.namespaces = namespaces::NamespaceLabels::fixed(table);
    c
}

#[test]
fn webhook_honours_modes_and_namespace_overrides() {
    let policy = "\
mode: warn
namespaces:
  - names: [prod-*]
    mode: enforce
  - labels: {hookguard.io/mode: audit}
    mode: audit
";
    let c = config(
        policy,
        &[("quiet", &[("hookguard.io/mode", "audit")]), ("dev", &[])],
    );

    // prod-*: enforced.
    let body = two_denials("prod-eu");
    let out = review(Webhook::Validate, &body, &c);
    let v = response(&out);
    assert_eq!(v["allowed"], false);
    assert_eq!(out.decision.verdict(), "denied");
    assert_eq!(out.decision.mode, Some(Mode::Enforce));

    // Elsewhere: warn mode, the denials become warnings and are recorded as would-deny.
    let body = two_denials("dev");
    let out = review(Webhook::Validate, &body, &c);
    let v = response(&out);
    assert_eq!(v["allowed"], true);
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        v["auditAnnotations"]["would-deny"],
        "unknown-hook-type,invalid-sync-wave"
    );
    assert_eq!(out.decision.verdict(), "warned");
    assert_eq!(
        out.decision.would_deny,
        vec![RuleId::UnknownHookType, RuleId::InvalidSyncWave]
    );

    // Label-selected audit: admitted, no warnings, only the audit annotations and the decision.
    let body = two_denials("quiet");
    let out = review(Webhook::Validate, &body, &c);
    let v = response(&out);
    assert_eq!(v["allowed"], true);
    assert!(v.get("warnings").is_none(), "{v}");
    assert_eq!(
        v["auditAnnotations"]["audit"],
        "unknown-hook-type=deny,invalid-sync-wave=deny"
    );
    assert_eq!(out.decision.verdict(), "audited");
    assert_eq!(out.decision.mode, Some(Mode::Audit));
    assert!(out.decision.rules.is_empty());

    // A namespace whose labels are unknown: the relaxing (audit) override is not assumed,
    // so the global warn mode applies.
    let body = two_denials("unseen");
    let out = review(Webhook::Validate, &body, &c);
    assert_eq!(response(&out)["warnings"].as_array().map(Vec::len), Some(2));
}

#[test]
fn webhook_and_verdict_agree_on_every_mode() {
    // The one verdict function is what admission uses: same policy, same findings, same answer.
    for mode in ["enforce", "warn", "audit"] {
        let yaml = format!("mode: {mode}\nrules: {{invalid-sync-wave: warn}}\n");
        let c = config(&yaml, &[]);
        let body = two_denials("ns");
        let out = review(Webhook::Validate, &body, &c);
        let v = response(&out);
        let findings = vec![
            finding(RuleId::UnknownHookType),
            finding(RuleId::InvalidSyncWave),
        ];
        let verdict = verdict(&findings, &c.policy.policy, &in_ns("ns"));
        assert_eq!(v["allowed"], verdict.allowed(), "{mode}");
        assert_eq!(
            v["warnings"].as_array().map(Vec::len).unwrap_or(0),
            verdict.warnings.len(),
            "{mode}"
        );
        assert_eq!(out.decision.audited.len(), verdict.audits.len(), "{mode}");
    }
}

#[test]
fn mutation_switches_come_from_the_policy() {
    let c = config(
        "mutation:\n  finalizer: false\n  translateHelm: false\n",
        &[],
    );
    let body = serde_json::to_vec(&fixture(4)).unwrap();
    let out = review(Webhook::Mutate, &body, &c);
    let v = response(&out);
    use base64::Engine;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(v["patch"].as_str().expect("a patch"))
        .unwrap();
    let patch = String::from_utf8(patch).unwrap();
    assert!(patch.contains("hookguard.io~1managed"), "{patch}");
    assert!(
        !patch.contains("hookguard.io/cleanup"),
        "no finalizer: {patch}"
    );
    assert!(!patch.contains("PreSync"), "no Helm translation: {patch}");
}

#[tokio::test]
async fn router_applies_a_reloaded_policy_to_the_next_request() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let s = Arc::new(store());
    let app = crate::server::router(crate::server::AppState::new(s.clone()), 1 << 20);
    let send = |app: axum::Router| async move {
        let req = Request::post("/validate")
            .header("content-type", "application/json")
            .body(Body::from(two_denials("hooks-lab")))
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["response"].clone()
    };
    assert_eq!(send(app.clone()).await["allowed"], false);
    s.offer(Ok(b"mode: audit\n".to_vec()), "p");
    let v = send(app.clone()).await;
    assert_eq!(v["allowed"], true);
    assert!(v.get("warnings").is_none());
    // A broken reload does not weaken anything: still the audit policy, not the defaults.
    s.offer(Ok(b"mode: audit\nrules: {x: y}\n".to_vec()), "p");
    assert_eq!(send(app).await["allowed"], true);
    assert_eq!(s.status().reloads_failed, 1);
}

/// The README's example file is valid, and its worked example is what the webhook answers.
#[test]
fn readme_example_policy_and_worked_example() {
    let readme = committed("README.md");
    let start = readme
        .find("```yaml\n# policy.yaml")
        .expect("example in README")
        + 8;
    let end = start + readme[start..].find("```").expect("end of block");
    let yaml = &readme[start..end];
    let base = parse(yaml);
    assert_eq!(base.mutation, MutationPolicy::default());
    assert_eq!(base.cleanup, CleanupPolicy::default());

    let job = |namespace: &str| {
        let mut r = fixture(2);
        r["request"]["namespace"] = json!(namespace);
        r["request"]["object"]["metadata"]["annotations"] = json!({
            "argocd.argoproj.io/hook": "PreSync",
            "argocd.argoproj.io/hook-delete-policy": "HookSuceeded"});
        r["request"]["object"]["spec"]["ttlSecondsAfterFinished"] = json!(60);
        serde_json::to_vec(&r).unwrap()
    };
    let run = |yaml: &str, ns: &str| {
        let body = job(ns);
        let out = review(Webhook::Validate, &body, &config(yaml, &[]));
        (response(&out), out.decision.verdict())
    };
    let (v, _) = run(yaml, "prod-eu");
    assert_eq!(v["allowed"], false);
    let msg = v["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("[unknown-delete-policy]") && msg.contains("[job-ttl-race]"),
        "{msg}"
    );

    let (v, verdict) = run(yaml, "dev");
    assert_eq!(v["allowed"], true);
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(
        v["auditAnnotations"]["would-deny"],
        "unknown-delete-policy,job-ttl-race"
    );
    assert_eq!(verdict, "warned");

    let audit = yaml.replacen("mode: warn", "mode: audit", 1);
    let (v, verdict) = run(&audit, "dev");
    assert_eq!(v["allowed"], true);
    assert!(v.get("warnings").is_none());
    assert_eq!(
        v["auditAnnotations"]["audit"],
        "unknown-delete-policy=deny,job-ttl-race=deny"
    );
    assert_eq!(verdict, "audited");
}

#[test]
fn short_hash_is_the_first_twelve_bytes_in_whole_characters() {
    let policy = ActivePolicy::defaults();
    assert_eq!(policy.short_hash().as_str(), &policy.hash[..12]);
    assert_eq!(
        format!("{:?}", policy.short_hash()),
        format!("{:?}", &policy.hash[..12])
    );
    assert_eq!(ShortHash::from("0123456789abcdef").as_str(), "0123456789ab");
    assert_eq!(ShortHash::from("abc").as_str(), "abc");
    assert_eq!(ShortHash::from("").as_str(), "");
    // 'é' is two bytes: the one that would straddle byte 12 is left out, not cut.
    assert_eq!(ShortHash::from("0123456789aé").as_str(), "0123456789a");
    assert_eq!(ShortHash::from("0123456789é").as_str(), "0123456789é");
}
