//! `halosync demo`, the README's main job: a real sync against the built-in
//! simulator that shows each kind of write and ends at rest.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;

use common::{halosync, stderr, stdout};

#[test]
fn the_demo_imports_syncs_carries_changes_and_comes_to_rest() {
    let keep = tempfile::tempdir().expect("tempdir");
    let output = halosync()
        .args(["demo", "--keep-in"])
        .arg(keep.path())
        .output()
        .expect("run");
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}\n{}", stderr(&output));
    let step = |n: u32| {
        let start = out.find(&format!("=== {n}.")).expect("step");
        let end = out[start + 1..]
            .find("=== ")
            .map_or(out.len(), |e| start + 1 + e);
        &out[start..end]
    };
    assert!(step(1).contains("link: \"Team stand-up\""), "{out}");
    assert!(step(1).contains("create in Halo: \"Server room audit\""));
    assert_eq!(step(1).matches("create in Halo: \"Weekly 1:1\"").count(), 3);
    assert!(step(2).contains("create in Exchange: \"Printer repair, 3rd floor\""));
    assert!(step(2).contains("create in Exchange: \"Laptop handover\""));
    assert!(
        step(4).contains("update in Halo: \"Server room audit\""),
        "{out}"
    );
    assert!(step(4).contains("update in Exchange: \"Printer repair, 3rd floor (toner too)\""));
    assert!(step(4).contains("delete in Halo: appointment"));
    assert_eq!(step(5).matches("nothing to do").count(), 2, "{out}");
    assert!(
        keep.path().join("halosync-sim.db").exists(),
        "kept where asked"
    );
    assert!(
        stderr(&output).is_empty(),
        "no warnings: {}",
        stderr(&output)
    );
}
