//! One mailbox halosync cannot read is reported with what to do about it
//! and skipped; the others sync.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

mod common;
#[path = "common/sync_sim.rs"]
mod sync_sim;

use serde_json::json;
use sync_sim::{SyncSim, event, subjects};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_without_access_is_diagnosed_and_skipped_while_the_others_sync() {
    let sim = SyncSim::start(
        json!({
            "agents": [{"id": 2, "name": "Leah", "email": "leah@contoso.com"},
                       {"id": 3, "name": "Amir", "email": "amir@contoso.com"},
                       {"id": 4, "name": "Noor", "email": "noor@contoso.com"}],
            "mailboxes": [{"upn": "leah@contoso.com"},
                          {"upn": "amir@contoso.com", "state": "access_denied"},
                          {"upn": "noor@contoso.com", "state": "unlicensed"}],
            "events": {"leah@contoso.com": [event("Audit", 1, 9, 10)]}
        }),
        "",
    )
    .await;
    let out = sim.expect(&["sync", "--once"], 3).await;
    let section = |who: &str| {
        let start = out.find(who).expect("agent shown");
        out[start..].lines().take(3).collect::<Vec<_>>().join("\n")
    };
    assert!(section("<amir@contoso.com>").contains("skipped:"), "{out}");
    assert!(
        section("<amir@contoso.com>").contains("what to do:"),
        "{out}"
    );
    assert!(
        section("<noor@contoso.com>").contains("what to do:"),
        "{out}"
    );
    assert_eq!(
        subjects(&sim.appointments().await),
        ["Audit"],
        "Leah synced"
    );

    // Nothing is deleted because a mailbox could not be read.
    let again = sim.expect(&["sync", "--once"], 3).await;
    assert!(!again.contains("delete in"), "{again}");
    assert_eq!(sim.appointments().await.len(), 1);
}
