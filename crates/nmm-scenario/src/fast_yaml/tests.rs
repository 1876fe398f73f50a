//! The fast reader against serde-saphyr: whatever it accepts, serde-saphyr reads to the
//! same tree; the forms scenarios are written in take the fast path.

use super::parse;
use proptest::prelude::*;
use serde_json::{json, Value};

fn saphyr(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// Fast path taken and equal to serde-saphyr.
fn same(text: &str) -> Value {
    let fast = parse(text).unwrap_or_else(|| panic!("gave up on {text:?}"));
    let v = fast.to_value(0);
    assert_eq!(Ok(v.clone()), saphyr(text), "{text:?}");
    v
}

/// Fast path either gives up or agrees with serde-saphyr (which must then accept).
fn agrees(text: &str) {
    if let Some(d) = parse(text) {
        assert_eq!(Ok(d.to_value(0)), saphyr(text), "{text:?}");
    }
}

#[test]
fn scenario_forms_take_the_fast_path() {
    let v = same("machine:\n  numaNodes:\n  - id: 0\n    cpus: 0-15\n    memory: 128Gi\n    hugepages:\n      1Gi: 16Gi\n  - {id: 1, cpus: \"16-31\", memory: 8Gi}\nkubelet:\n  kubeReserved:\n    cpu: '2'\n  evictionHard: {}\n  reservedMemory:\n  - numaNode: 0\n    limits:\n      memory: 1Gi\nsteps:\n- admit:\n    metadata: {name: p, uid: u1}   # a pod\n    spec:\n      containers:\n      - name: c\n        resources:\n          limits: {cpu: 2, memory: 1Gi}\n- remove:\n    uid: u1\n");
    assert_eq!(v["machine"]["numaNodes"][0]["cpus"], json!("0-15"));
    assert_eq!(
        v["steps"][0]["admit"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        json!(2)
    );
    same("---\n# comment\na: 1\nb:\n  - x\n  -\n  - - 1\n    - 2\nc: 'it''s'\nd: \"tab\\tq\\\"\\u00e9\"\ne:\nf: [a, 'b', \"c\", {g: h}, [], {}]\n");
    same("- a\n- b: 1\n  c: 2\n-   d: 3\n    e: x y z # trailing\n");
    same("a: x#c\nb: http://example.com/x\nc: 10.96.0.10\nd: -1Gi\ne: 0.5\nf: -3\ng: 18446744073709551615\nh: ~\ni: null\nj: true\nk: false\nl: 1:2\n");
    same("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    \"example.com/x\": \"1\"\nspec:\n  containers:\n  - name: app\n    image: \"busybox:1.36\"\n    command: [\"sh\", \"-c\", \"sleep 1\"]\n");
    same("a: 1\r\nb: [x, z]\r\n");
    same("{a: 1, b: [2, 3]}\n");
}

#[test]
fn gives_up_where_saphyr_decides() {
    for text in [
        "a: 1\na: 2\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: |\n  text\n",
        "a: >\n  text\n",
        "a: x\n  continued\n",
        "a: [1,\n 2]\n",
        "a: \"two\n  lines\"\n",
        "a: 1\n---\nb: 2\n",
        "a: b: c\n",
        "a: yes\n",
        "a: y\n",
        "a: On\n",
        "a: 007\n",
        "a: 0x1F\n",
        "a: 1e3\n",
        "a: .inf\n",
        "a: +5\n",
        "a: 1_000\n",
        "a:\tb\n",
        "\ta: 1\n",
        "? a\n: b\n",
        "a: - b\n",
        "a: b\n b: c\n",
        "a: [b: c]\n",
        "%YAML 1.2\n---\na: 1\n",
        "",
        "# only a comment\n",
        "a: 'x' y\n",
        "a: @x\n",
        "null: 1\n",
        "yes: 1\n",
        "\u{feff}a: 1\n",
        "a:\n  b: 1\n c: 2\n",
        "- a\nb: 1\n",
        "a: {b: 1, b: 2}\n",
        "a: 12345678901234567890123\n",
        "a: {x: 1}\nb:\n  <<: {x: 2}\n",
    ] {
        assert!(parse(text).is_none(), "should give up on {text:?}");
    }
}

#[test]
fn tricky_scalars_agree() {
    for s in [
        "0-3",
        "3-1",
        "1.5Gi",
        "500m",
        "2.0",
        "-0",
        "0",
        "-2",
        "1.",
        ".5",
        "e3",
        "1e",
        "0o8",
        "deadbeef",
        "nan",
        "inf",
        "NaN",
        "Infinity",
        "2001-12-14",
        "1__0",
        "-.5",
        "+.5",
        "00",
        "08",
        "0.0",
        "x,y",
        ":x",
        "?x",
        "a'b",
        "a\"b",
        "-x",
        "--x",
        "True",
        "FALSE",
        "Null",
        "~x",
        "12:30:00",
        "1,000",
        "0x",
        "-9223372036854775808",
        "9223372036854775808",
    ] {
        agrees(&format!("a: {s}\n"));
        agrees(&format!("a: [{s}]\n"));
        agrees(&format!("{s}: 1\n"));
        agrees(&format!("- {s}\n"));
    }
}

/// Strings that YAML may read as something else.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,6}",
        "[0-9]{1,4}",
        "[0-9]{1,2}[.-][0-9]{1,2}",
        Just("y".to_string()),
        Just("no".to_string()),
        Just("007".to_string()),
        Just("1e3".to_string()),
        Just("a: b".to_string()),
        Just("#x".to_string()),
        Just("x #y".to_string()),
        Just("-".to_string()),
        Just("- x".to_string()),
        Just("'q'".to_string()),
        Just("\"d\"".to_string()),
        Just("".to_string()),
        Just("null".to_string()),
        Just("[x]".to_string()),
        Just("{x}".to_string()),
        Just("x\ny".to_string()),
        Just(" lead".to_string()),
        Just("é".to_string()),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1000.0f64..1000.0).prop_map(|f| json!(f)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Documents serde-saphyr writes, in block style: the fast reader agrees.
    #[test]
    fn agrees_with_saphyr_on_what_saphyr_writes(v in value()) {
        let doc = json!({"root": v});
        if let Ok(text) = serde_saphyr::to_string(&doc) {
            agrees(&text);
        }
        agrees(&serde_json::to_string(&doc).unwrap());
    }
}

fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

/// Every YAML file of the repository's examples and the shared corpus (conformance
/// scenarios, fixtures): read by the fast path when it can, always to serde-saphyr's
/// tree; and the scenarios written by people and generators do take the fast path.
#[test]
fn corpus_agrees_and_mostly_takes_the_fast_path() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for d in ["examples", "../shared", "docs", "deploy"] {
        yaml_files(&root.join(d), &mut files);
    }
    let (mut fast, mut all) = (0, 0);
    let mut slow = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let Ok(want) = saphyr(&text) else {
            assert!(parse(&text).is_none(), "{}: saphyr refuses it", f.display());
            continue;
        };
        all += 1;
        match crate::scenario::parse_doc(&text) {
            Some(d) => {
                fast += 1;
                assert_eq!(d.to_value(0), want, "{}", f.display());
            }
            None => slow.push(f.display().to_string()),
        }
    }
    assert!(all >= 10, "corpus not found under {}", root.display());
    assert!(fast * 10 >= all * 9, "{fast} of {all} fast; slow: {slow:?}");
}
