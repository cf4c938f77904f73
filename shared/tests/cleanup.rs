//! The cleanup jobs on DynamoDB Local: the Streams consumer fed with the table's real
//! stream records (read with the DynamoDB Streams client), and the retention sweep.

mod common;

use std::collections::HashMap;

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use callsign::domain::housekeeping::{SweepPolicy, sweep};
use callsign::domain::identity::{CustomId, Identity, IdentityId, IdentityKind, ResourceId};
use callsign::domain::lifecycle::SweepReason;
use callsign::domain::ports::{Housekeeping, IdentityStore};
use callsign::lambda::cleanup::cleanup_event;
use chrono::{Duration, Utc};
use serde_json::json;

fn resource() -> ResourceId {
    common::RESOURCE.parse().unwrap()
}

fn identity(
    custom_id: Option<&str>,
    kind: IdentityKind,
    created: chrono::DateTime<Utc>,
) -> Identity {
    let mut identity = Identity::new_stable(
        IdentityId::new(resource()),
        custom_id.map(|c| CustomId::parse(c).unwrap()),
        created,
    );
    identity.kind = kind;
    identity
}

fn malformed_record() -> EventRecord {
    let mut change = StreamRecord::default();
    let keys: HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue> = HashMap::from([(
        "pk".into(),
        aws_sdk_dynamodbstreams::types::AttributeValue::S("ID#not-an-identity".into()),
    )]);
    change.keys = serde_dynamo::Item::from(keys.clone());
    change.old_image = serde_dynamo::Item::from(keys); // no id, no createdAt: unreadable
    change.sequence_number = Some("999999999999999999999".into());
    let mut record = EventRecord::default();
    record.event_id = "malformed".into();
    record.event_name = "REMOVE".into();
    record.change = change;
    record
}

async fn pks(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<(String, Option<String>)> {
    common::scan(client, table)
        .await
        .into_iter()
        .map(|item| {
            let pk = item["pk"].as_s().unwrap().clone();
            let points_to = item.get("identityId").and_then(|v| v.as_s().ok()).cloned();
            (pk, points_to)
        })
        .collect()
}

#[tokio::test]
async fn the_stream_consumer_removes_what_refers_to_removed_identities() {
    let (store, client, name) = common::table("cleanup").await;
    let now = Utc::now();
    let kept = identity(Some("kept"), IdentityKind::Stable, now);
    let removed_behind_our_back = identity(Some("orphan"), IdentityKind::Stable, now);
    let expired_guest = identity(
        None,
        IdentityKind::Ephemeral {
            expires_at: now - Duration::minutes(1),
        },
        now,
    );
    let deleted_properly = identity(Some("proper"), IdentityKind::Stable, now);
    for i in [
        &kept,
        &removed_behind_our_back,
        &expired_guest,
        &deleted_properly,
    ] {
        store.create(i.clone()).await.unwrap();
    }
    // Removals the admin API did not make: a console delete, and TTL's expiry removal.
    for gone in [&removed_behind_our_back, &expired_guest] {
        client
            .delete_item()
            .table_name(&name)
            .key("pk", AttributeValue::S(format!("ID#{}", gone.id)))
            .send()
            .await
            .unwrap();
    }
    assert!(store.delete(&deleted_properly.id).await.unwrap());

    let mut records = common::stream_records(&client, &name).await;
    assert!(records.iter().filter(|r| r.event_name == "REMOVE").count() >= 3);
    records.insert(records.len() / 2, malformed_record());
    let mut event = Event::default();
    event.records = records;
    let policy = SweepPolicy {
        retention: None,
        page_size: 100,
        pages_per_run: 1,
    };
    let stray = cleanup_event(&store, &policy, json!({"hello": "world"})).await;
    assert!(
        stray.is_err(),
        "only the stream and the schedule start work"
    );

    for run in 0..2 {
        // A second delivery of the same batch (Lambda retries) changes nothing more.
        let response = cleanup_event(&store, &policy, serde_json::to_value(&event).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response,
            json!({"batchItemFailures": [{"itemIdentifier": "999999999999999999999"}]}),
            "run {run}"
        );
        let remaining = pks(&client, &name).await;
        let removed_ids = [
            removed_behind_our_back.id.to_string(),
            expired_guest.id.to_string(),
            deleted_properly.id.to_string(),
        ];
        for (pk, points_to) in &remaining {
            for id in &removed_ids {
                assert!(!pk.contains(id.as_str()), "run {run}: {pk} remains");
                assert_ne!(
                    points_to.as_deref(),
                    Some(id.as_str()),
                    "run {run}: {pk} still refers to {id}"
                );
            }
        }
        assert!(
            remaining.iter().any(|(pk, _)| *pk == "CID#kept"),
            "run {run}: a live mapping was removed"
        );
        assert!(
            store
                .find_by_custom_id(&CustomId::parse("orphan").unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn the_sweep_removes_exactly_what_is_past_retention_and_resumes_across_runs() {
    let (store, client, name) = common::table("cleanup").await;
    let now = Utc::now();
    // The sweep runs two hours ahead: guests expiring in one hour are expired to it, yet
    // DynamoDB Local's own TTL deletion cannot have removed them first.
    let sweep_at = now + Duration::hours(2);
    let mut doomed = Vec::new();
    for _ in 0..5 {
        let guest = identity(
            None,
            IdentityKind::Ephemeral {
                expires_at: now + Duration::hours(1),
            },
            now,
        );
        store.create(guest.clone()).await.unwrap();
        doomed.push(guest.id);
    }
    for n in 0..3 {
        let idle = identity(
            Some(&format!("idle-{n}")),
            IdentityKind::Stable,
            now - Duration::days(40),
        );
        store.create(idle.clone()).await.unwrap();
        doomed.push(idle.id);
    }
    let mut kept = Vec::new();
    for n in 0..2 {
        let mut active = identity(
            Some(&format!("active-{n}")),
            IdentityKind::Stable,
            now - Duration::days(40),
        );
        active.last_token_issued_at = Some(now - Duration::days(2));
        store.create(active.clone()).await.unwrap();
        kept.push(active.id);
    }
    let fresh_guest = identity(
        None,
        IdentityKind::Ephemeral {
            expires_at: now + Duration::hours(5),
        },
        now,
    );
    store.create(fresh_guest.clone()).await.unwrap();
    kept.push(fresh_guest.id);

    // A token issued after the scan read an idle identity saves it: the delete is
    // conditional on what the scan saw.
    let raced = identity(
        Some("raced"),
        IdentityKind::Stable,
        now - Duration::days(40),
    );
    store.create(raced.clone()).await.unwrap();
    store
        .record_token_issue(&raced.id, callsign::domain::time::now())
        .await
        .unwrap();
    assert!(!store.purge(&raced, SweepReason::Inactive).await.unwrap());
    kept.push(raced.id);

    let policy = SweepPolicy {
        retention: Some(Duration::days(30)),
        page_size: 3,
        pages_per_run: 2,
    };
    let first = sweep(&store, &policy, sweep_at).await.unwrap();
    assert_eq!(first.pages, 2);
    assert!(!first.finished, "stops at the page limit");
    assert!(
        store.sweep_cursor().await.unwrap().is_some(),
        "and saves where it stopped"
    );

    let (mut expired, mut inactive) = (first.expired_removed, first.inactive_removed);
    let mut finished = false;
    for _ in 0..10 {
        let report = sweep(&store, &policy, sweep_at).await.unwrap();
        expired += report.expired_removed;
        inactive += report.inactive_removed;
        if report.finished {
            finished = true;
            break;
        }
    }
    assert!(finished);
    assert_eq!((expired, inactive), (5, 3));
    assert_eq!(store.sweep_cursor().await.unwrap(), None);
    let remaining: Vec<String> = pks(&client, &name)
        .await
        .into_iter()
        .map(|(pk, _)| pk)
        .collect();
    for id in &doomed {
        assert!(!remaining.contains(&format!("ID#{id}")), "{id} survived");
    }
    for id in &kept {
        assert!(remaining.contains(&format!("ID#{id}")), "{id} was removed");
    }
    assert!(
        !remaining.iter().any(|pk| pk.starts_with("CID#idle-")),
        "mappings of swept identities remain"
    );
    assert_eq!(
        remaining
            .iter()
            .filter(|pk| pk.starts_with("CID#active-"))
            .count(),
        2
    );
}

/// The local server's embedded store has no TTL and no cleanup function: it sweeps itself
/// while the server runs (`MemoryApp::sweep_forever`).
#[tokio::test]
async fn the_embedded_store_sweeps_itself_while_it_runs() {
    use callsign::adapters::memory::MemoryStore;
    use callsign::app::MemoryApp;
    use std::sync::Arc;

    let store = Arc::new(MemoryStore::new());
    let now = Utc::now();
    let expired = identity(
        Some("gone@contoso.com"),
        IdentityKind::Ephemeral {
            expires_at: now - Duration::minutes(1),
        },
        now - Duration::hours(2),
    );
    let kept = identity(Some("kept@contoso.com"), IdentityKind::Stable, now);
    for created in [&expired, &kept] {
        store.create(created.clone()).await.unwrap();
    }
    let policy = SweepPolicy {
        retention: None,
        page_size: 100,
        pages_per_run: 20,
    };
    let sweeping = tokio::spawn(MemoryApp::sweep_forever(
        store.clone(),
        policy,
        std::time::Duration::from_millis(20),
    ));
    let mut stored = Vec::new();
    for _ in 0..250 {
        let (page, _) = store.identities_page(None, 100).await.unwrap();
        stored = page.into_iter().map(|i| i.id).collect();
        if stored.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sweeping.abort();
    assert_eq!(stored, vec![kept.id.clone()]);
}
