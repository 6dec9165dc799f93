//! The notification parser against arbitrary input: it never panics, and
//! an item is verified exactly when it names the known subscription and
//! echoes that subscription's clientState.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test should fail loudly

use halosync::webhook::notification::{
    KnownSubscription, LifecycleEvent, NotificationKind, client_state_hash, parse_and_verify,
};
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

const SECRET: &str = "s3cret-client-state";

fn lookup(id: &str) -> Result<Option<KnownSubscription>, std::convert::Infallible> {
    Ok((id == "sub-1").then(|| KnownSubscription {
        subscription_id: "sub-1".into(),
        agent_id: 2,
        mailbox: "leah@contoso.com".into(),
        client_state_hash: client_state_hash(&SecretString::from(SECRET)),
    }))
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value for a string field: often right, sometimes of the wrong type.
fn field(likely: Vec<&'static str>) -> impl Strategy<Value = Option<Value>> {
    let choices: Vec<Value> = likely.into_iter().map(|s| json!(s)).collect();
    prop_oneof![
        3 => prop::sample::select(choices).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => arb_json().prop_map(Some),
    ]
}

/// Items shaped like Graph's, with every field liable to be wrong.
fn arb_item() -> impl Strategy<Value = Value> {
    (
        field(vec!["sub-1", "sub-2", "SUB-1"]),
        field(vec![
            SECRET,
            "s3cret-client-statE",
            "",
            "s3cret-client-state ",
        ]),
        field(vec!["created", "updated", "deleted"]),
        field(vec![
            "missed",
            "subscriptionRemoved",
            "reauthorizationRequired",
            "exploded",
        ]),
        field(vec!["Users/u/Events/e1"]),
        prop::option::of(arb_json()),
        prop::collection::btree_map("[a-z]{1,6}", arb_json(), 0..3),
    )
        .prop_map(|(sub, state, change, lifecycle, resource, data, extra)| {
            let mut item: Map<String, Value> = extra.into_iter().collect();
            for (key, value) in [
                ("subscriptionId", sub),
                ("clientState", state),
                ("changeType", change),
                ("lifecycleEvent", lifecycle),
                ("resource", resource),
                ("resourceData", data),
            ] {
                if let Some(value) = value {
                    item.insert(key.into(), value);
                }
            }
            Value::Object(item)
        })
}

fn string_or_absent(item: &Map<String, Value>, key: &str) -> bool {
    matches!(item.get(key), None | Some(Value::Null | Value::String(_)))
}

/// What the parser must make of an item, decided independently of it.
fn expected(item: &Value) -> Option<NotificationKind> {
    let item = item.as_object()?;
    let well_typed = [
        "clientState",
        "changeType",
        "lifecycleEvent",
        "resource",
        "id",
    ]
    .iter()
    .all(|key| string_or_absent(item, key));
    if !well_typed || item.get("subscriptionId") != Some(&json!("sub-1")) {
        return None;
    }
    if item.get("clientState") != Some(&json!(SECRET)) {
        return None;
    }
    match item.get("lifecycleEvent").and_then(Value::as_str) {
        None => Some(NotificationKind::Change),
        Some(event) => LifecycleEvent::parse(event).map(NotificationKind::Lifecycle),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_and_verify_nothing_without_the_secret(
        bytes in prop::collection::vec(any::<u8>(), 0..512)
    ) {
        if let Ok(verification) = parse_and_verify(&bytes, lookup) {
            let verification = verification.unwrap();
            // Random bytes cannot hold the secret, so nothing verifies.
            prop_assert!(verification.verified.is_empty());
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        for body in [value.clone(), json!({"value": value})] {
            if let Ok(verification) = parse_and_verify(body.to_string().as_bytes(), lookup) {
                let verification = verification.unwrap();
                for verified in &verification.verified {
                    prop_assert_eq!(verified.subscription.subscription_id.as_str(), "sub-1");
                }
            }
        }
    }

    #[test]
    fn an_item_is_verified_exactly_when_it_echoes_its_subscriptions_client_state(
        items in prop::collection::vec(arb_item(), 1..8)
    ) {
        let body = json!({"value": items}).to_string();
        let verification = parse_and_verify(body.as_bytes(), lookup)
            .expect("a collection of items parses")
            .unwrap();
        prop_assert_eq!(verification.item_count(), items.len());
        let want: Vec<NotificationKind> = items.iter().filter_map(expected).collect();
        let got: Vec<NotificationKind> = verification.verified.iter().map(|v| v.kind).collect();
        prop_assert_eq!(got, want);
    }
}
