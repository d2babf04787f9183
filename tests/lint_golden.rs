//! Golden tests for `hookguard lint` and `hookguard translate`: every input under
//! tests/golden/inputs is run through the real binary and the output (stdout, stderr, exit
//! code) is compared with tests/golden/expected. `UPDATE_GOLDEN=1 cargo test --test
//! lint_golden` rewrites the expected files; review the diff before committing it.

use hookguard::lint::report::{self, FileResult};
use hookguard::lint::{self, ObjectRef};
use hookguard::mutation::MutationSettings;
use hookguard::rules::{Action, RuleId};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hookguard");

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0")
}

/// Runs the binary from the crate root, so paths in the output are the relative ones given.
fn run(args: &[&str], stdin: Option<&[u8]>) -> (String, String, i32) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("HOOKGUARD_LINT_FORMAT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hookguard runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out = child.wait_with_output().expect("hookguard finishes");
    (
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
        out.status.code().unwrap_or(-1),
    )
}

fn transcript(args: &[&str], stdout: &str, stderr: &str, code: i32) -> String {
    format!(
        "$ hookguard {}\nexit: {code}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        args.join(" ")
    )
}

/// Compares with (or, under UPDATE_GOLDEN, writes) tests/golden/expected/<name>.
fn check(name: &str, actual: &str, failures: &mut Vec<String>) {
    let path = golden_dir().join("expected").join(name);
    if updating() {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{name} differs (UPDATE_GOLDEN=1 to rewrite, then review):\n--- expected\n{expected}\n--- actual\n{actual}"
        ));
    }
}

fn inputs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir().join("inputs"))
        .expect("inputs")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "golden inputs are missing");
    names
}

#[test]
fn lint_goldens() {
    let mut failures = Vec::new();
    for name in inputs() {
        let path = format!("tests/golden/inputs/{name}");
        let args = ["lint", path.as_str()];
        let (out, err, code) = run(&args, None);
        check(
            &format!("{name}.lint"),
            &transcript(&args, &out, &err, code),
            &mut failures,
        );
    }
    // The other formats, on one input with every level.
    for format in ["json", "github"] {
        let args = [
            "lint",
            "--format",
            format,
            "tests/golden/inputs/postsync-smoke-test.yaml",
        ];
        let (out, err, code) = run(&args, None);
        check(
            &format!("postsync-smoke-test.yaml.lint-{format}"),
            &transcript(&args, &out, &err, code),
            &mut failures,
        );
    }
    // A directory: walked recursively, files that are not manifests skipped.
    let args = ["lint", "tests/golden/dir"];
    let (out, err, code) = run(&args, None);
    check(
        "dir.lint",
        &transcript(&args, &out, &err, code),
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn translate_goldens() {
    let mut failures = Vec::new();
    for name in inputs() {
        let path = format!("tests/golden/inputs/{name}");
        let args = ["translate", path.as_str()];
        let (out, err, code) = run(&args, None);
        check(
            &format!("{name}.translate"),
            &transcript(&args, &out, &err, code),
            &mut failures,
        );
        if code == 0 {
            // translate of its own output changes nothing, read from stdin as a post-renderer.
            let (again, _, code2) = run(&["translate"], Some(out.as_bytes()));
            assert_eq!(code2, 0, "{name}: translating the output failed");
            assert_eq!(again, out, "{name}: translate is not idempotent");
        }
    }
    let args = [
        "translate",
        "--managed",
        "tests/golden/inputs/db-migration-presync.yaml",
    ];
    let (out, err, code) = run(&args, None);
    check(
        "db-migration-presync.yaml.translate-managed",
        &transcript(&args, &out, &err, code),
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every catalogue rule, with the ones that are off by default turned on (as a platform
/// team's policy would), so each fires in rules-firing.yaml and none in rules-not-firing.yaml.
#[test]
fn every_rule_fires_and_does_not_fire() {
    let all_on = |rule: RuleId, _: &ObjectRef| match rule.default_action() {
        Action::Off => Action::Warn,
        action => action,
    };
    let mut results = Vec::new();
    for name in ["rules-firing.yaml", "rules-not-firing.yaml"] {
        let bytes = std::fs::read(golden_dir().join("inputs").join(name)).expect("input");
        results.push(FileResult {
            path: format!("tests/golden/inputs/{name}"),
            report: lint::lint_bytes(&bytes, &all_on),
        });
    }
    let fired: std::collections::BTreeSet<&str> = results[0]
        .report
        .diagnostics
        .iter()
        .map(|d| d.check.name())
        .collect();
    for rule in RuleId::ALL {
        assert!(
            fired.contains(rule.name()),
            "{} does not fire in rules-firing.yaml",
            rule.name()
        );
    }
    assert_eq!(
        results[1].report.diagnostics,
        vec![],
        "rules fire on rules-not-firing.yaml"
    );
    // Exactly one catalogue rule per object in rules-firing.yaml.
    let mut per_object: std::collections::BTreeMap<usize, Vec<&str>> = Default::default();
    for d in &results[0].report.diagnostics {
        if matches!(d.check, lint::Check::Rule(_)) {
            per_object
                .entry(d.object.line)
                .or_default()
                .push(d.check.name());
        }
    }
    for (line, rules) in &per_object {
        assert_eq!(rules.len(), 1, "object at line {line} fires {rules:?}");
    }
    let mut failures = Vec::new();
    check("rules.all-on", &report::text(&results), &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn stdin_is_the_default_input() {
    let text = std::fs::read(golden_dir().join("inputs/postsync-smoke-test.yaml")).expect("input");
    let (from_stdin, _, code) = run(&["lint"], Some(&text));
    let (from_dash, _, code2) = run(&["lint", "-"], Some(&text));
    assert_eq!((code, code2), (1, 1));
    assert_eq!(from_stdin, from_dash);
    assert!(
        from_stdin.starts_with("<stdin>:18: deny pod-never-completes"),
        "{from_stdin}"
    );
}

#[test]
fn usage_and_unreadable_files_exit_2() {
    let (_, err, code) = run(&["lint", "--format", "xml"], None);
    assert_eq!(code, 2, "{err}");
    let (out, _, code) = run(&["lint", "tests/golden/no-such-file.yaml"], None);
    assert_eq!(code, 2);
    assert!(
        out.contains("tests/golden/no-such-file.yaml: error: cannot read"),
        "{out}"
    );
    let (_, err, code) = run(&["translate", "tests/golden/no-such-file.yaml"], None);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

/// A 50 MB stream, generated here (never committed): every document is read, lines stay
/// right at the end of the stream, and translate handles it too.
#[test]
fn fifty_megabyte_stream() {
    let (stream, objects, last_line) = generate_stream(50 * 1024 * 1024);
    let (out, err, code) = run(&["lint", "--format", "json"], Some(stream.as_bytes()));
    assert_eq!(code, 1, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["summary"]["objects"], objects);
    assert_eq!(report["summary"]["documents"], objects);
    let findings = report["findings"].as_array().expect("findings");
    // One typo every 1000 documents: a deny and Argo CD's drop note each.
    assert_eq!(findings.len(), 2 * objects.div_ceil(1000));
    let last = findings.last().expect("a finding");
    assert_eq!(last["line"], last_line);
    assert_eq!(last["rule"], "argo-drops-object");

    let (translated, err, code) = run(&["translate"], Some(stream.as_bytes()));
    assert_eq!(code, 0, "{err}");
    assert!(translated.len() > stream.len());
    assert_eq!(
        translated.matches("\n---\n").count(),
        stream.matches("\n---\n").count()
    );
    let settings = MutationSettings::default();
    let again = lint::translate(translated.as_bytes(), &settings, false).expect("translates");
    assert_eq!(again.changed_objects, 0);
}

/// `helm template`-like output: Helm hook Jobs, plain Deployments and ConfigMaps, and every
/// 1000th document an Argo hook with a typo. Returns the text, the number of documents and
/// the line of the last typo'd document.
fn generate_stream(size: usize) -> (String, usize, usize) {
    let mut out = String::with_capacity(size + 4096);
    let mut n = 0;
    let mut line = 1;
    let mut last_typo_line = 0;
    while out.len() < size {
        let doc = match n % 3 {
            _ if n % 1000 == 0 => format!(
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: typo-{n}\n  annotations:\n    argocd.argoproj.io/hook: presync\nspec: {{}}\n"
            ),
            0 => format!(
                "# Source: app/templates/migrate.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate-{n}\n  namespace: prod\n  labels:\n    app.kubernetes.io/name: app\n  annotations:\n    \"helm.sh/hook\": pre-install,pre-upgrade\n    \"helm.sh/hook-weight\": \"-5\"\n    \"helm.sh/hook-delete-policy\": before-hook-creation,hook-succeeded\nspec:\n  backoffLimit: 1\n  activeDeadlineSeconds: 600\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: \"registry.example.com/app:1.2.3\"\n          args: [\"migrate\", \"--to\", \"latest\"]\n          resources: {{limits: {{cpu: 500m, memory: 256Mi}}}}\n"
            ),
            1 => format!(
                "# Source: app/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{n}\n  labels: {{app: web}}\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n          ports:\n            - containerPort: 8080\n          args:\n            - --config=/etc/web/config.yaml\n"
            ),
            _ => format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{n}\ndata:\n  config.yaml: |\n    listen: :8080\n    log: info\n"
            ),
        };
        if n > 0 {
            out.push_str("---\n");
            line += 1;
        }
        if n % 1000 == 0 {
            last_typo_line = line;
        }
        line += doc.matches('\n').count();
        out.push_str(&doc);
        n += 1;
    }
    (out, n, last_typo_line)
}
