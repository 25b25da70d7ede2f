use super::*;
use std::time::Duration;

fn config() -> Config {
    let mut c = Config::builtin();
    let mut m = std::collections::BTreeMap::new();
    m.insert("spammer.example".to_string(), "REJECT".to_string());
    c.maps.insert("badclient".into(), m);
    c
}

fn spec_error(spec: &str) -> String {
    match Table::open(spec, &config()) {
        Err(MapError::Spec(e)) => e,
        Err(e) => panic!("{spec}: not a spec error: {e}"),
        Ok(_) => panic!("{spec}: opened"),
    }
}

#[test]
fn inline_and_static_specs() {
    let c = config();
    let t = Table::open("inline:badclient", &c).unwrap();
    assert_eq!(t.get("Spammer.Example").unwrap().as_deref(), Some("REJECT"));
    assert!(!t.is_pattern());
    let t = Table::open(
        "inline:{ a.example=OK, { b.example = REJECT no, thanks } }",
        &c,
    )
    .unwrap();
    assert_eq!(t.get("a.example").unwrap().as_deref(), Some("OK"));
    assert_eq!(
        t.get("B.example").unwrap().as_deref(),
        Some("REJECT no, thanks")
    );
    assert_eq!(t.get("c.example").unwrap(), None);
    let t = Table::open("static:REJECT closed", &c).unwrap();
    assert_eq!(t.get("anything").unwrap().as_deref(), Some("REJECT closed"));
    let t = Table::open("static:{ DUNNO }", &c).unwrap();
    assert_eq!(t.get("x").unwrap().as_deref(), Some("DUNNO"));
    let t = Table::open(r"pcre:{ {/^Subject: .*\bmoney\b/ REJECT}, {/./ OK} }", &c).unwrap();
    assert!(t.is_pattern());
    assert_eq!(t.get("Subject: money").unwrap().as_deref(), Some("REJECT"));
    assert_eq!(t.get("Subject: moneyless").unwrap().as_deref(), Some("OK"));
    assert_eq!(
        t.spec(),
        r"pcre:{ {/^Subject: .*\bmoney\b/ REJECT}, {/./ OK} }"
    );
}

#[test]
fn bad_specs() {
    assert!(spec_error("nosuch:/x").contains("unsupported table type"));
    assert!(spec_error("hash:relative/path").contains("absolute"));
    assert!(spec_error("inline:nosuch").contains("[maps.nosuch]"));
    assert!(spec_error("justaname").contains("type:name"));
    assert!(spec_error("hash:/nonexistent/postern-table").contains("cannot read"));
    assert!(
        spec_error("regexp:{ {/a/ OK}, {/(b/ OK} }").contains(":2: error: bad regular expression")
    );
    assert!(spec_error("inline:{ a }").contains("missing '='"));
}

#[test]
fn file_with_errors_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checks");
    std::fs::write(&path, "/ok/ OK\n/bad REJECT\n").unwrap();
    let e = spec_error(&format!("regexp:{}", path.display()));
    assert_eq!(
        e,
        format!("{}:2: error: missing closing delimiter '/'", path.display())
    );
}

#[test]
fn files_are_read_again_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access");
    std::fs::write(&path, "a.example REJECT\n").unwrap();
    let spec = format!("hash:{}", path.display());
    let t = Table::open(&spec, &config()).unwrap();
    // Opened once per process: the same table again.
    let again = Table::open(&spec, &config()).unwrap();
    assert!(Arc::ptr_eq(&t.inner, &again.inner));
    assert_eq!(t.get("a.example").unwrap().as_deref(), Some("REJECT"));

    std::fs::write(&path, "a.example OK\nb.example REJECT\n").unwrap();
    std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
    assert_eq!(t.get("a.example").unwrap().as_deref(), Some("OK"));

    // A broken edit: the last good version keeps serving.
    std::fs::write(&path, "a.example\n").unwrap();
    std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
    assert_eq!(again.get("b.example").unwrap().as_deref(), Some("REJECT"));

    // Gone: lookups fail until it is back.
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
    assert!(matches!(t.get("a.example"), Err(MapError::Unavailable(_))));
    std::fs::write(&path, "c.example OK\n").unwrap();
    std::thread::sleep(CHECK_EVERY + Duration::from_millis(50));
    assert_eq!(t.get("c.example").unwrap().as_deref(), Some("OK"));
}

#[test]
fn postfix_indexed_types_read_the_source_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sender_access");
    std::fs::write(&path, "spam@example.com REJECT\n").unwrap();
    for ty in ["btree", "cdb", "lmdb", "texthash"] {
        let t = Table::open(&format!("{ty}:{}", path.display()), &config()).unwrap();
        assert!(t.get("SPAM@example.com").unwrap().is_some(), "{ty}");
    }
}

#[test]
fn files_named_by_specs() {
    let specs = vec![
        "pcre:/etc/postern/header_checks".to_string(),
        "check_client_access hash:/etc/postern/badclient".to_string(),
        "inline:x".to_string(),
        "permit_mynetworks".to_string(),
    ];
    assert_eq!(
        files_of(&specs),
        vec![
            PathBuf::from("/etc/postern/header_checks"),
            PathBuf::from("/etc/postern/badclient")
        ]
    );
}
