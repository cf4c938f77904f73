//! Identity lifecycle events on real parts: the changes are DynamoDB Local's own stream
//! records, the ledger is the table, and the events go through moto's EventBridge onto a
//! test bus whose archive (read back from moto's state) shows what was published.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use callsign::adapters::dynamodb::DynamoDbStore;
use callsign::adapters::eventbridge::EventBridgeBus;
use callsign::domain::housekeeping::{SweepPolicy, sweep};
use callsign::domain::identity::{CustomId, Identity, IdentityId, IdentityKind, ResourceId};
use callsign::domain::lifecycle::LifecyclePublisher;
use callsign::domain::placement::Placement;
use callsign::domain::ports::IdentityStore;
use callsign::lambda::lifecycle::on_identity_changes;
use chrono::{Duration, Utc};
use serde_json::Value;

/// The identity events/identity-events-stream.json changes.
const SAMPLE_ID: &str =
    "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";

struct Bus {
    client: aws_sdk_eventbridge::Client,
    name: String,
    archive: String,
}

/// A fresh bus on moto whose archive keeps every callsign event put on it.
async fn bus() -> Bus {
    let config = common::aws_config(common::servers::moto_endpoint()).await;
    let client = aws_sdk_eventbridge::Client::new(&config);
    let name = common::unique("callsign");
    let arn = client
        .create_event_bus()
        .name(&name)
        .send()
        .await
        .unwrap()
        .event_bus_arn
        .unwrap();
    let archive = common::unique("events");
    client
        .create_archive()
        .archive_name(&archive)
        .event_source_arn(arn)
        .event_pattern(r#"{"source": ["callsign.identity"]}"#)
        .send()
        .await
        .unwrap();
    Bus {
        client,
        name,
        archive,
    }
}

impl Bus {
    fn publisher(&self, store: DynamoDbStore, placement: Option<Placement>) -> LifecyclePublisher {
        self.publisher_to(&self.name, store, placement)
    }

    fn publisher_to(
        &self,
        bus: &str,
        store: DynamoDbStore,
        placement: Option<Placement>,
    ) -> LifecyclePublisher {
        LifecyclePublisher {
            ledger: Arc::new(store),
            bus: Arc::new(EventBridgeBus::new(self.client.clone(), bus)),
            placement,
        }
    }

    /// Every event the archive holds, as (detail-type, identity id, detail).
    async fn archived(&self) -> Vec<(String, String, Value)> {
        let url = format!("{}/moto-api/data.json", common::servers::moto_endpoint());
        let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
        let state: Value = serde_json::from_slice(&body).unwrap();
        let archive = state["events"]["Archive"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == self.archive.as_str())
            .expect("the archive is in moto's state")
            .clone();
        archive["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| {
                assert_eq!(event["source"], "callsign.identity");
                let detail = event["detail"].clone();
                (
                    event["detail-type"].as_str().unwrap().to_owned(),
                    detail["identity"]["id"].as_str().unwrap().to_owned(),
                    detail,
                )
            })
            .collect()
    }
}

fn identity(id: IdentityId, custom_id: Option<&str>, created_days_ago: i64) -> Identity {
    Identity::new_stable(
        id,
        custom_id.map(|c| CustomId::parse(c).unwrap()),
        Utc::now() - Duration::days(created_days_ago),
    )
}

fn new_id() -> IdentityId {
    IdentityId::new(common::RESOURCE.parse().unwrap())
}

/// Delivers `records` to the function as one stream batch; answers the records Lambda is
/// asked to deliver again, by sequence number (empty: the batch is done).
async fn deliver(publisher: &LifecyclePublisher, records: Vec<EventRecord>) -> Vec<String> {
    let mut event = Event::default();
    event.records = records;
    on_identity_changes(publisher, &event)
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.expect("a sequence number"))
        .collect()
}

/// How many events of each (type, identity) the archive holds.
fn counted(events: &[(String, String, Value)]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for (event_type, id, _) in events {
        *counts.entry((event_type.clone(), id.clone())).or_default() += 1;
    }
    counts
}

fn expected(pairs: &[(&str, &IdentityId)]) -> BTreeMap<(String, String), usize> {
    pairs
        .iter()
        .map(|(event_type, id)| (((*event_type).to_owned(), id.to_string()), 1))
        .collect()
}

#[tokio::test]
async fn every_change_publishes_its_event_once_even_when_the_stream_delivers_it_again() {
    let (store, client, name) = common::table("events").await;
    let alice = identity(new_id(), Some("alice"), 0);
    let bob = identity(new_id(), None, 0);
    let mut guest = identity(new_id(), None, 0);
    guest.kind = IdentityKind::Ephemeral {
        expires_at: Utc::now() + Duration::hours(1),
    };
    // A guest already past its expiry: its removal is an expiry by its own times.
    let mut expired_guest = identity(new_id(), None, 0);
    expired_guest.kind = IdentityKind::Ephemeral {
        expires_at: Utc::now() - Duration::minutes(1),
    };
    let idle = identity(new_id(), Some("idle"), 40);
    for created in [&alice, &bob, &guest, &expired_guest, &idle] {
        store.create(created.clone()).await.unwrap();
    }
    store
        .record_token_issue(&alice.id, Utc::now())
        .await
        .unwrap();
    assert!(store.revoke_tokens(&alice.id).await.unwrap());
    assert!(store.delete(&bob.id).await.unwrap());
    // The sweep runs two hours ahead, so the first guest is past its expiry to it (not yet
    // at the stream's time: its reason comes from the sweep's mark).
    let policy = SweepPolicy {
        retention: Some(Duration::days(30)),
        page_size: 100,
        pages_per_run: 5,
    };
    let report = sweep(&store, &policy, Utc::now() + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(report.inactive_removed, 1);
    // DynamoDB Local's TTL may have removed the expired guest first: either way it goes.
    assert!(report.expired_removed >= 1);

    let bus = bus().await;
    let publisher = bus.publisher(store, None);
    let records = common::stream_records(&client, &name).await;
    assert!(deliver(&publisher, records.clone()).await.is_empty());
    // The stream delivers the batch again, and then with the ledger's own records in it.
    assert!(deliver(&publisher, records).await.is_empty());
    let records = common::stream_records(&client, &name).await;
    assert!(deliver(&publisher, records).await.is_empty());

    let events = bus.archived().await;
    assert_eq!(
        counted(&events),
        expected(&[
            ("IdentityCreated", &alice.id),
            ("IdentityCreated", &bob.id),
            ("IdentityCreated", &guest.id),
            ("IdentityCreated", &expired_guest.id),
            ("IdentityCreated", &idle.id),
            ("TokensRevoked", &alice.id),
            ("IdentityDeleted", &bob.id),
            ("IdentitySwept", &guest.id),
            ("IdentitySwept", &expired_guest.id),
            ("IdentitySwept", &idle.id),
        ])
    );
    let guests = [guest.id.to_string(), expired_guest.id.to_string()];
    for (event_type, id, detail) in &events {
        assert_eq!(detail["schemaVersion"], 1);
        let keys: Vec<&str> = detail
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        for key in &keys {
            assert!(
                [
                    "schemaVersion",
                    "changeId",
                    "occurredAt",
                    "identity",
                    "revocationEpoch",
                    "reason"
                ]
                .contains(key),
                "{event_type}: unexpected field {key}"
            );
        }
        for key in detail["identity"].as_object().unwrap().keys() {
            assert!(
                ["id", "customId", "kind", "createdAt", "expiresAt"].contains(&key.as_str()),
                "{event_type}: unexpected identity field {key}"
            );
        }
        let expected_kind = if guests.contains(id) {
            "guest"
        } else {
            "stable"
        };
        assert_eq!(detail["identity"]["kind"], expected_kind);
        match event_type.as_str() {
            "TokensRevoked" => assert_eq!(detail["revocationEpoch"], 1),
            "IdentitySwept" if guests.contains(id) => {
                assert_eq!(detail["reason"], "expired");
            }
            "IdentitySwept" => assert_eq!(detail["reason"], "inactive"),
            "IdentityCreated" if *id == alice.id.to_string() => {
                assert_eq!(detail["identity"]["customId"], "alice");
            }
            _ => assert!(detail.get("reason").is_none()),
        }
    }
}

#[tokio::test]
async fn a_batch_the_bus_refused_is_delivered_again_from_its_first_record_and_published_once() {
    let (store, client, name) = common::table("events").await;
    let created: Vec<Identity> = (0..12).map(|_| identity(new_id(), None, 0)).collect();
    for identity in &created {
        store.create(identity.clone()).await.unwrap();
    }
    let records = common::stream_records(&client, &name).await;
    let bus = bus().await;

    let missing_bus = bus.publisher_to(
        "no-such-bus",
        DynamoDbStore::new(client.clone(), &name),
        None,
    );
    assert_eq!(
        deliver(&missing_bus, records.clone()).await,
        [records[0].change.sequence_number.clone().unwrap()],
        "Lambda delivers the batch again from its first record"
    );
    let marks = common::scan(&client, &name)
        .await
        .into_iter()
        .filter(|item| item["pk"].as_s().unwrap().starts_with("EVENT#"))
        .count();
    assert_eq!(marks, 0, "nothing is marked published");

    let publisher = bus.publisher(store, None);
    assert!(deliver(&publisher, records.clone()).await.is_empty());
    assert!(deliver(&publisher, records).await.is_empty());
    let pairs: Vec<(&str, &IdentityId)> = created
        .iter()
        .map(|identity| ("IdentityCreated", &identity.id))
        .collect();
    assert_eq!(counted(&bus.archived().await), expected(&pairs));
}

#[tokio::test]
async fn only_the_home_region_publishes_and_changes_replication_brought_in_publish_nothing() {
    let regions = ["us-east-1".to_owned(), "eu-west-1".to_owned()];
    let in_a = Placement::new("us-east-1", &regions).unwrap();
    let in_b = Placement::new("eu-west-1", &regions).unwrap();
    let resource: ResourceId = common::RESOURCE.parse().unwrap();
    let homed_a = identity(in_a.new_id(resource, "us-east-1"), None, 0);
    let homed_b = identity(in_a.new_id(resource, "eu-west-1"), Some("bea"), 0);
    let (a, client, table_a) = common::table("region-a").await;
    let (b, _, table_b) = common::table("region-b").await;
    // Each write lands in its home and is replicated to the other region's table.
    for store in [&a, &b] {
        store.create(homed_a.clone()).await.unwrap();
        store.create(homed_b.clone()).await.unwrap();
        assert!(store.delete(&homed_b.id).await.unwrap());
    }

    let bus = bus().await;
    for (store, table, placement) in [(a, &table_a, in_a), (b, &table_b, in_b)] {
        let publisher = bus.publisher(store, Some(placement));
        let records = common::stream_records(&client, table).await;
        assert!(deliver(&publisher, records).await.is_empty());
    }
    assert_eq!(
        counted(&bus.archived().await),
        expected(&[
            ("IdentityCreated", &homed_a.id),
            ("IdentityCreated", &homed_b.id),
            ("IdentityDeleted", &homed_b.id),
        ])
    );
}

#[tokio::test]
async fn the_sample_stream_event_publishes_a_create_a_revoke_and_a_delete_past_an_unreadable_record()
 {
    let (store, _, _) = common::table("sample").await;
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/identity-events-stream.json"
    ))
    .unwrap();
    let mut sample: Event = serde_json::from_str(&raw).unwrap();
    // A record no delivery could read (an image without the identity's fields) is skipped,
    // not retried: it would hold back every later change.
    let mut unreadable = sample.records[0].clone();
    unreadable.event_id = "unreadable".into();
    unreadable.change.new_image = unreadable.change.keys.clone();
    sample.records.insert(1, unreadable);
    let bus = bus().await;
    let publisher = bus.publisher(store, None);
    for _ in 0..2 {
        assert!(deliver(&publisher, sample.records.clone()).await.is_empty());
    }
    let id = IdentityId::parse(SAMPLE_ID).unwrap();
    let events = bus.archived().await;
    assert_eq!(
        counted(&events),
        expected(&[
            ("IdentityCreated", &id),
            ("TokensRevoked", &id),
            ("IdentityDeleted", &id),
        ])
    );
    let created = &events.iter().find(|e| e.0 == "IdentityCreated").unwrap().2;
    assert_eq!(created["identity"]["customId"], "alice@contoso.com");
    assert_eq!(created["occurredAt"], "2026-11-21T13:50:00.000Z");
}
