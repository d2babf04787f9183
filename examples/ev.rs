use hookguard::lint::yaml::Documents;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let s = std::fs::read_to_string(path).unwrap();
    for d in Documents::new(&s) {
        let d = d.unwrap();
        if let Some(r) = d.root {
            dump(&s, &r, 0);
        }
    }
}
fn dump(s: &str, n: &hookguard::lint::yaml::Node, depth: usize) {
    use hookguard::lint::yaml::Value;
    let pad = " ".repeat(depth * 2);
    println!(
        "{pad}{:?} span={:?} {:?} line={} col={} flow={}",
        match &n.value {
            Value::Map(_) => "map".to_string(),
            Value::Seq(_) => "seq".to_string(),
            v => format!("{v:?}"),
        },
        n.span,
        &s[n.span.clone()].chars().take(30).collect::<String>(),
        n.line,
        n.col,
        n.flow
    );
    match &n.value {
        Value::Map(e) => {
            for (k, v) in e {
                dump(s, k, depth + 1);
                dump(s, v, depth + 2);
            }
        }
        Value::Seq(i) => {
            for x in i {
                dump(s, x, depth + 1)
            }
        }
        _ => {}
    }
}
