//! One conformance suite for every `IdentityStore` (and `AccessKeyLedger`) adapter: the
//! in-memory store, the DynamoDB adapter against DynamoDB Local (started by the test
//! fixture), and its multi-region form over two regions' databases in DynamoDB Local
//! (no replication between them: each write must land in its home).

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use callsign::adapters::dynamodb::{DynamoDbStore, HomedStore};
use callsign::adapters::memory::MemoryStore;
use callsign::domain::identity::{CustomId, Identity, IdentityId, IdentityKind, ResourceId};
use callsign::domain::ports::{
    AccessKeyLedger, Attempt, Attempted, Created, Housekeeping, IdentityStore, TokenState,
};
use callsign::domain::token::CurrentAccessKeys;
use chrono::{Duration, Utc};

fn resource() -> ResourceId {
    common::RESOURCE.parse().unwrap()
}

/// An identity as the service makes one: its id from the store (a multi-region store
/// homes it where it is created, or with its customId).
fn stable(store: &(impl IdentityStore + ?Sized), custom_id: Option<&str>) -> Identity {
    let custom_id = custom_id.map(|c| CustomId::parse(c).unwrap());
    Identity::new_stable(
        store.new_id(resource(), custom_id.as_ref()),
        custom_id,
        callsign::domain::time::now(),
    )
}

fn expired(store: &(impl IdentityStore + ?Sized), custom_id: Option<&str>) -> Identity {
    let mut identity = stable(store, custom_id);
    identity.kind = IdentityKind::Ephemeral {
        expires_at: Utc::now() - Duration::seconds(5),
    };
    identity
}

async fn create_get_and_token_bookkeeping(store: &dyn IdentityStore) {
    let identity = stable(store, None);
    assert_eq!(
        store.create(identity.clone()).await.unwrap(),
        Created::New(identity.clone())
    );
    let stored = store
        .get(&identity.id)
        .await
        .unwrap()
        .expect("created identity is readable");
    assert_eq!(stored.id, identity.id);
    assert_eq!(stored.revocation_epoch, 0);
    assert_eq!(stored.last_token_issued_at, None);

    let at = callsign::domain::time::now();
    let issued = store
        .record_token_issue(&identity.id, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(issued.last_token_issued_at, Some(at));
    assert_eq!(issued.revocation_epoch, 0);
    assert!(store.revoke_tokens(&identity.id).await.unwrap());
    assert!(store.revoke_tokens(&identity.id).await.unwrap());
    let issued = store
        .record_token_issue(&identity.id, Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        issued.revocation_epoch, 2,
        "each revoke bumps the epoch once"
    );
    assert_eq!(
        store
            .get(&identity.id)
            .await
            .unwrap()
            .unwrap()
            .revocation_epoch,
        2
    );

    let unknown = IdentityId::new(resource());
    assert_eq!(store.get(&unknown).await.unwrap(), None);
    assert_eq!(
        store
            .record_token_issue(&unknown, Utc::now())
            .await
            .unwrap(),
        None
    );
    assert!(!store.revoke_tokens(&unknown).await.unwrap());
    assert!(!store.delete(&unknown).await.unwrap());
}

async fn writing_the_same_identity_again_is_idempotent(store: &dyn IdentityStore) {
    for identity in [
        stable(store, None),
        stable(store, Some(&common::unique("retry"))),
    ] {
        assert_eq!(
            store.create(identity.clone()).await.unwrap(),
            Created::New(identity.clone())
        );
        // An SDK-level retry of a write that landed: the same identity, nothing new.
        let again = store.create(identity.clone()).await.unwrap();
        assert_eq!(again.identity().id, identity.id);
        assert_eq!(
            store.get(&identity.id).await.unwrap().unwrap().created_at,
            identity.created_at
        );
    }
}

async fn create_with_a_token_records_the_issue_on_an_existing_identity(store: &dyn IdentityStore) {
    let custom = common::unique("token");
    let first = stable(store, Some(&custom));
    store.create(first.clone()).await.unwrap();
    store.revoke_tokens(&first.id).await.unwrap();
    let mut again = stable(store, Some(&custom));
    let issued_at = callsign::domain::time::now();
    again.last_token_issued_at = Some(issued_at);
    match store.create(again).await.unwrap() {
        Created::Existing(existing) => {
            assert_eq!(existing.id, first.id);
            assert_eq!(existing.last_token_issued_at, Some(issued_at));
            assert_eq!(
                existing.revocation_epoch, 1,
                "the epoch a new token must carry"
            );
        }
        other => panic!("expected the existing identity, got {other:?}"),
    }
    assert_eq!(
        store
            .get(&first.id)
            .await
            .unwrap()
            .unwrap()
            .last_token_issued_at,
        Some(issued_at)
    );
}

/// A table shared by two resource ids: a create of ours whose customId another resource
/// holds gets that identity back (the service refuses it) and records no token issue on it.
async fn another_resources_identity_is_answered_not_touched(store: &dyn IdentityStore) {
    let custom = common::unique("shared");
    let custom_id = CustomId::parse(&custom).unwrap();
    let theirs: ResourceId = common::OTHER_RESOURCE.parse().unwrap();
    let held = Identity::new_stable(
        store.new_id(theirs, Some(&custom_id)),
        Some(custom_id),
        callsign::domain::time::now(),
    );
    store.create(held.clone()).await.unwrap();
    let mut ours = stable(store, Some(&custom));
    ours.last_token_issued_at = Some(callsign::domain::time::now());
    match store.create(ours).await.unwrap() {
        Created::Existing(existing) => assert_eq!(existing.id, held.id),
        other => panic!("expected the existing identity, got {other:?}"),
    }
    let stored = store.get(&held.id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_token_issued_at, None,
        "another resource's identity is not touched"
    );
}

async fn custom_id_maps_to_one_identity_until_deleted(store: &dyn IdentityStore) {
    let custom = common::unique("user");
    let first = stable(store, Some(&custom));
    assert!(matches!(
        store.create(first.clone()).await.unwrap(),
        Created::New(_)
    ));
    match store.create(stable(store, Some(&custom))).await.unwrap() {
        Created::Existing(existing) => assert_eq!(existing.id, first.id),
        other => panic!("second create made {other:?}"),
    }
    let custom_id = CustomId::parse(&custom).unwrap();
    assert_eq!(
        store
            .find_by_custom_id(&custom_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );

    assert!(store.delete(&first.id).await.unwrap());
    assert_eq!(store.get(&first.id).await.unwrap(), None);
    assert_eq!(store.find_by_custom_id(&custom_id).await.unwrap(), None);
    assert_eq!(
        store
            .record_token_issue(&first.id, Utc::now())
            .await
            .unwrap(),
        None
    );

    let fresh = stable(store, Some(&custom));
    assert!(matches!(
        store.create(fresh.clone()).await.unwrap(),
        Created::New(_)
    ));
    assert_eq!(
        store
            .find_by_custom_id(&custom_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        fresh.id
    );
}

async fn expired_identities_count_as_gone(store: &dyn IdentityStore) {
    let gone = expired(store, None);
    store.create(gone.clone()).await.unwrap();
    assert_eq!(store.get(&gone.id).await.unwrap(), None);
    assert_eq!(
        store
            .record_token_issue(&gone.id, Utc::now())
            .await
            .unwrap(),
        None
    );
    assert!(!store.revoke_tokens(&gone.id).await.unwrap());
    assert!(!store.delete(&gone.id).await.unwrap());

    // A customId whose identity expired maps to a new identity on the next create.
    let custom = common::unique("guest");
    store.create(expired(store, Some(&custom))).await.unwrap();
    let custom_id = CustomId::parse(&custom).unwrap();
    assert_eq!(store.find_by_custom_id(&custom_id).await.unwrap(), None);
    let next = stable(store, Some(&custom));
    assert!(matches!(
        store.create(next.clone()).await.unwrap(),
        Created::New(_)
    ));
    assert_eq!(
        store
            .find_by_custom_id(&custom_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        next.id
    );
}

/// 20 concurrent creates with one customId: one identity, everyone gets it.
async fn concurrent_creates_agree(store: Arc<dyn IdentityStore>) -> String {
    let custom = common::unique("race");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, identity) = (store.clone(), stable(&*store, Some(&custom)));
            tokio::spawn(async move { store.create(identity).await })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut new = 0;
    for task in tasks {
        let created = task.await.unwrap().expect("every racer gets an answer");
        new += matches!(created, Created::New(_)) as usize;
        ids.insert(created.identity().id.clone());
    }
    assert_eq!(new, 1, "exactly one racer creates");
    assert_eq!(ids.len(), 1, "every racer sees the same identity");
    custom
}

fn attempt(key: &str, body: &str, valid_for: Duration) -> Attempt {
    Attempt {
        key: key.to_owned(),
        body_hash: format!("hash of {body}"),
        expires_at: Utc::now() + valid_for,
    }
}

/// A retry of the attempt `(key, body)` answers with `made` and writes no identity of
/// its own.
async fn assert_retry_finds(store: &dyn IdentityStore, key: &str, body: &str, made: &IdentityId) {
    let retried = stable(store, None);
    let replayed = store
        .create_once(retried.clone(), &attempt(key, body, Duration::minutes(15)))
        .await
        .unwrap();
    assert!(
        matches!(&replayed, Attempted::Replayed(found) if &found.id == made),
        "a retry of {body} finds {made}: {replayed:?}"
    );
    assert!(store.get(&retried.id).await.unwrap().is_none());
}

/// A retried create (same attempt key, same body) answers with the first attempt's
/// identity, recording a token issue on it if the retry carries one; another body under
/// the same key is another request (itself retried safely); an expired attempt counts no
/// more; once its identity is gone, the attempt makes a new one, which its retries find.
async fn a_retried_create_makes_no_second_identity(store: &dyn IdentityStore) {
    let key = format!("primary#{}", common::unique("request"));
    let first = stable(store, None);
    let minutes = Duration::minutes(15);
    assert_eq!(
        store
            .create_once(first.clone(), &attempt(&key, "{}", minutes))
            .await
            .unwrap(),
        Attempted::New(first.clone())
    );
    let mut retry = stable(store, None);
    let issued = callsign::domain::time::now();
    retry.last_token_issued_at = Some(issued);
    match store
        .create_once(retry.clone(), &attempt(&key, "{}", minutes))
        .await
        .unwrap()
    {
        Attempted::Replayed(made) => {
            assert_eq!(made.id, first.id);
            assert_eq!(made.last_token_issued_at, Some(issued));
        }
        other => panic!("a retry answered {other:?}"),
    }
    assert!(
        store.get(&retry.id).await.unwrap().is_none(),
        "no second identity"
    );
    let other_body = stable(store, None);
    assert_eq!(
        store
            .create_once(
                other_body.clone(),
                &attempt(&key, r#"{"other":1}"#, minutes)
            )
            .await
            .unwrap(),
        Attempted::New(other_body.clone())
    );
    // The other body's retry finds its own identity.
    assert_retry_finds(store, &key, r#"{"other":1}"#, &other_body.id).await;
    // Another caller's request id, or the same one once expired, is a new request.
    let other = stable(store, None);
    let other_key = key.replacen("primary", "secondary", 1);
    assert_eq!(
        store
            .create_once(other.clone(), &attempt(&other_key, "{}", minutes))
            .await
            .unwrap(),
        Attempted::New(other)
    );
    let stale_key = format!("primary#{}", common::unique("stale"));
    store
        .create_once(
            stable(store, None),
            &attempt(&stale_key, "{}", Duration::seconds(-1)),
        )
        .await
        .unwrap();
    let fresh = stable(store, None);
    assert_eq!(
        store
            .create_once(fresh.clone(), &attempt(&stale_key, "{}", minutes))
            .await
            .unwrap(),
        Attempted::New(fresh)
    );
    // Once the identity is deleted the same attempt makes a new one, and a retry of that
    // finds it rather than making a third.
    assert!(store.delete(&first.id).await.unwrap());
    let remade = stable(store, None);
    assert_eq!(
        store
            .create_once(remade.clone(), &attempt(&key, "{}", minutes))
            .await
            .unwrap(),
        Attempted::New(remade.clone())
    );
    assert_retry_finds(store, &key, "{}", &remade.id).await;
    assert!(store.get(&remade.id).await.unwrap().is_some());
}

/// The records a token check reads (one round trip), and the access keys' fingerprint
/// list: seeded by a first admit, settled per generation, never rolled back.
async fn token_state_and_fingerprints<S: IdentityStore + AccessKeyLedger>(store: &S) {
    let identity = stable(store, None);
    store.create(identity.clone()).await.unwrap();
    let teams = IdentityId::teams_user(uuid::Uuid::new_v4());
    let state = store.token_state(&identity.id).await.unwrap();
    assert_eq!(state.identity.as_ref().map(|i| &i.id), Some(&identity.id));
    assert_eq!(state.access_keys, None, "no list before a regeneration");
    assert_eq!(
        store.token_state(&teams).await.unwrap(),
        TokenState::default()
    );
    assert_eq!(store.fingerprints().await.unwrap(), None);

    let current = vec!["p0".to_owned(), "s0".to_owned()];
    assert!(store.admit_fingerprint("p1", &current, 0).await.unwrap());
    let state = store.token_state(&identity.id).await.unwrap();
    assert_eq!(
        state.access_keys,
        Some(CurrentAccessKeys(vec![
            "p0".into(),
            "s0".into(),
            "p1".into()
        ]))
    );
    assert!(state.identity.is_some());
    assert!(
        store
            .settle_fingerprints(&["p1".into(), "s0".into()], 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .settle_fingerprints(&["p1".into(), "s0".into()], 1)
            .await
            .unwrap(),
        "again: idempotent"
    );
    assert!(
        !store.settle_fingerprints(&current, 0).await.unwrap(),
        "a stale settle"
    );
    assert!(
        !store.admit_fingerprint("x", &current, 0).await.unwrap(),
        "a stale admit"
    );
    assert_eq!(
        store.fingerprints().await.unwrap(),
        Some((CurrentAccessKeys(vec!["p1".into(), "s0".into()]), 1))
    );
    assert_eq!(
        store.token_state(&teams).await.unwrap().access_keys,
        Some(CurrentAccessKeys(vec!["p1".into(), "s0".into()]))
    );
    assert!(store.delete(&identity.id).await.unwrap());
    assert_eq!(
        store.token_state(&identity.id).await.unwrap().identity,
        None
    );
}

async fn run_suite(store: Arc<dyn IdentityStore>) -> String {
    create_get_and_token_bookkeeping(store.as_ref()).await;
    a_retried_create_makes_no_second_identity(store.as_ref()).await;
    writing_the_same_identity_again_is_idempotent(store.as_ref()).await;
    create_with_a_token_records_the_issue_on_an_existing_identity(store.as_ref()).await;
    another_resources_identity_is_answered_not_touched(store.as_ref()).await;
    custom_id_maps_to_one_identity_until_deleted(store.as_ref()).await;
    expired_identities_count_as_gone(store.as_ref()).await;
    concurrent_creates_agree(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    token_state_and_fingerprints(&MemoryStore::new()).await;
    run_suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_store_conforms() {
    let client = common::dynamodb().await;
    let table = common::unique("conformance");
    let store = DynamoDbStore::new(client.clone(), &table);
    store.create_table_if_missing().await.unwrap();
    store.create_table_if_missing().await.expect("idempotent");
    token_state_and_fingerprints(&store).await;
    let raced = run_suite(Arc::new(store)).await;

    // What the table holds for the raced customId: one identity item, one mapping.
    assert_eq!(held(&client, &table, &raced).await, (1, 1));

    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(
        ttl.attribute_name.as_deref(),
        Some(callsign::adapters::dynamodb::items::TTL_ATTRIBUTE)
    );
}

const HOME: &str = "us-east-1";
const AWAY: &str = "eu-west-1";

/// A table in two regions' databases of DynamoDB Local, and a store in `HOME` that homes
/// writes over both, as the composition root builds it.
async fn two_region_table() -> (HomedStore, String, aws_config::SdkConfig) {
    let endpoint = common::servers::dynamodb_endpoint();
    let sdk = common::aws_config(endpoint).await;
    let table = common::unique("homed");
    for region in [HOME, AWAY] {
        DynamoDbStore::new(regional(&sdk, region), &table)
            .create_table_if_missing()
            .await
            .unwrap();
    }
    let config = common::config_with(&[
        ("CALLSIGN_TABLE_NAME", &table),
        ("CALLSIGN_REGIONS", &format!("{HOME},{AWAY}")),
        ("AWS_REGION", HOME),
        ("CALLSIGN_DYNAMODB_ENDPOINTS", &format!("{AWAY}={endpoint}")),
    ]);
    let store =
        callsign::app::homed_store(&config, config.regions.as_ref().unwrap(), &sdk).unwrap();
    (store, table, sdk)
}

fn regional(sdk: &aws_config::SdkConfig, region: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .region(aws_config::Region::new(region.to_owned()))
            .build(),
    )
}

/// Identity items and mappings of `custom_id` in a table (one region's replica).
async fn held(client: &aws_sdk_dynamodb::Client, table: &str, custom_id: &str) -> (usize, usize) {
    let items = common::scan(client, table).await;
    let identities = items
        .iter()
        .filter(|item| item.get("customId") == Some(&AttributeValue::S(custom_id.to_owned())))
        .count();
    let mappings = items
        .iter()
        .filter(|item| item.get("pk") == Some(&AttributeValue::S(format!("CID#{custom_id}"))))
        .count();
    (identities, mappings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn homed_store_conforms_and_writes_a_custom_id_only_in_its_home() {
    let (store, table, sdk) = two_region_table().await;
    let placement = store.placement().clone();
    let raced = run_suite(Arc::new(store)).await;
    let home = placement.custom_id_home(&CustomId::parse(&raced).unwrap());
    let away = if home == HOME { AWAY } else { HOME };
    assert_eq!(held(&regional(&sdk, home), &table, &raced).await, (1, 1));
    assert_eq!(held(&regional(&sdk, away), &table, &raced).await, (0, 0));
}

/// An item of one region's replica, as it is now.
async fn read_item(
    sdk: &aws_config::SdkConfig,
    region: &str,
    table: &str,
    pk: String,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    regional(sdk, region)
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Outside an identity's home, a token issue reads the local replica and records itself in
/// a SEEN# item; the identity item is written only in its home (revoke, delete).
#[tokio::test]
async fn homed_store_never_writes_an_identity_outside_its_home() {
    let (store, table, sdk) = two_region_table().await;
    let id = store.placement().new_id(resource(), AWAY);
    let mut identity = stable(&store, None);
    identity.id = id.clone();
    assert!(matches!(
        store.create(identity.clone()).await.unwrap(),
        Created::New(_)
    ));
    let item = |region| read_item(&sdk, region, &table, format!("ID#{id}"));
    assert!(item(HOME).await.is_none(), "created in its home only");
    // Not replicated yet: the issue is recorded in the home, which holds the identity.
    let at = callsign::domain::time::now();
    let issued = store.record_token_issue(&id, at).await.unwrap().unwrap();
    assert_eq!(issued.last_token_issued_at, Some(at));

    // Replication brings the identity here; issues then stay local.
    let replica = DynamoDbStore::new(regional(&sdk, HOME), &table);
    replica.create(issued.clone()).await.unwrap();
    let later = at + Duration::seconds(5);
    let again = store.record_token_issue(&id, later).await.unwrap().unwrap();
    assert_eq!(again.last_token_issued_at, Some(later));
    let seen = read_item(&sdk, HOME, &table, format!("SEEN#{HOME}#{id}"))
        .await
        .expect("a SEEN# item in the local replica");
    assert_eq!(
        seen.get("lastTokenIssuedAt"),
        Some(&AttributeValue::N(later.timestamp_millis().to_string()))
    );
    for region in [HOME, AWAY] {
        let stored = item(region).await.unwrap();
        assert_eq!(
            stored.get("lastTokenIssuedAt"),
            Some(&AttributeValue::N(at.timestamp_millis().to_string())),
            "{region}: the identity item keeps its home's last write"
        );
    }

    // Revoke and delete are written in the home replica only.
    assert!(store.revoke_tokens(&id).await.unwrap());
    let epoch = |item: Option<std::collections::HashMap<String, AttributeValue>>| {
        item.unwrap().get("revocationEpoch").cloned()
    };
    assert_eq!(epoch(item(AWAY).await), Some(AttributeValue::N("1".into())));
    assert_eq!(epoch(item(HOME).await), Some(AttributeValue::N("0".into())));
    assert!(store.delete(&id).await.unwrap());
    assert!(item(AWAY).await.is_none());
    assert!(
        item(HOME).await.is_some(),
        "the local copy goes by replication"
    );
}

/// Each region sweeps only the identities homed there, and a token issue another region
/// recorded (its SEEN# item, replicated here) keeps an identity from looking idle.
#[tokio::test]
async fn homed_store_sweeps_only_its_own_identities_and_counts_issues_elsewhere() {
    let (store, table, sdk) = two_region_table().await;
    let local = DynamoDbStore::new(regional(&sdk, HOME), &table);
    let made = |home: &str| {
        let mut identity = stable(&store, None);
        identity.id = store.placement().new_id(resource(), home);
        identity
    };
    // As replication leaves them in HOME's replica: two homed here, one homed away.
    let (idle, used_elsewhere, away) = (made(HOME), made(HOME), made(AWAY));
    for identity in [&idle, &used_elsewhere, &away] {
        local.create(identity.clone()).await.unwrap();
    }
    regional(&sdk, HOME)
        .put_item()
        .table_name(&table)
        .item(
            "pk",
            AttributeValue::S(format!("SEEN#{AWAY}#{}", used_elsewhere.id)),
        )
        .item(
            "lastTokenIssuedAt",
            AttributeValue::N(Utc::now().timestamp_millis().to_string()),
        )
        .item(
            "expiresAt",
            AttributeValue::N((Utc::now().timestamp() + 3600).to_string()),
        )
        .send()
        .await
        .unwrap();
    let mut page = Vec::new();
    let mut cursor = None;
    loop {
        let (identities, next) = store.identities_page(cursor.as_deref(), 100).await.unwrap();
        page.extend(identities.into_iter().map(|i| i.id));
        if next.is_none() {
            break;
        }
        cursor = next;
    }
    assert_eq!(page, std::slice::from_ref(&idle.id));

    // A customId homed away is unmapped by its home, never here.
    let custom_id = (0..)
        .map(|i| CustomId::parse(&format!("away-{i}")).unwrap())
        .find(|c| store.placement().custom_id_home(c) == AWAY)
        .unwrap();
    let mut mapped = stable(&store, Some(custom_id.as_str()));
    mapped.id = store.placement().new_id(resource(), AWAY);
    local.create(mapped.clone()).await.unwrap();
    store
        .unmap_custom_id(&custom_id, mapped.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        local.find_by_custom_id(&custom_id).await.unwrap(),
        Some(mapped)
    );
}

#[tokio::test]
async fn dynamodb_store_reports_a_missing_table_as_an_error() {
    let store = DynamoDbStore::new(common::dynamodb().await, common::unique("missing"));
    let err = store.create(stable(&store, None)).await.unwrap_err();
    assert!(
        err.to_string().contains("ResourceNotFoundException"),
        "{err}"
    );
}

/// A mapping that points at another identity (never made by callsign itself, but possible
/// in hand-edited or migrated data) must not make the identity undeletable.
#[tokio::test]
async fn dynamodb_delete_keeps_a_mapping_that_belongs_to_another_identity() {
    let client = common::dynamodb().await;
    let table = common::unique("foreign");
    let store = DynamoDbStore::new(client.clone(), &table);
    store.create_table_if_missing().await.unwrap();
    let custom = common::unique("shared");
    let owner = stable(&store, Some(&custom));
    store.create(owner.clone()).await.unwrap();
    let other = IdentityId::new(resource());
    client
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("CID#{custom}")))
        .update_expression("SET identityId = :other")
        .expression_attribute_values(":other", AttributeValue::S(other.to_string()))
        .send()
        .await
        .unwrap();

    assert!(store.delete(&owner.id).await.unwrap());
    assert_eq!(store.get(&owner.id).await.unwrap(), None);
    let mapping = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("CID#{custom}")))
        .send()
        .await
        .unwrap()
        .item
        .expect("the foreign mapping stays");
    assert_eq!(
        mapping.get("identityId"),
        Some(&AttributeValue::S(other.to_string()))
    );
    assert!(!store.delete(&owner.id).await.unwrap());
}
