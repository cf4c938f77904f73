//! Identity lifecycle events (schema `callsign.identity`, version 1; docs/events.md): what a
//! change to a stored identity means for the apps that subscribe, and publishing each
//! change's event once, even when the table's stream delivers the change again.
//!
//! Only the region an identity is homed in publishes its events. Every write to an
//! identity item happens in its home (`placement`), so a change replication brought in
//! from another region is never published twice, and a guest that DynamoDB's TTL
//! removed in several regions is reported once.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::identity::{Identity, IdentityKind};
use super::placement::Placement;
use super::ports::{EventBus, EventLedger, StoreError};

/// The events' `source`.
pub const SOURCE: &str = "callsign.identity";
/// Bumped on any change a subscriber could notice; fields are only ever added within one.
pub const SCHEMA_VERSION: u32 = 1;
/// EventBridge's limit of entries per `PutEvents` call.
const ENTRIES_PER_CALL: usize = 10;

/// One change to one identity item, as the table's stream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChange {
    /// The stream record's id: the same on every delivery of this change.
    pub change_id: String,
    pub at: DateTime<Utc>,
    pub before: Option<Identity>,
    pub after: Option<Identity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    IdentityCreated,
    TokensRevoked,
    IdentityDeleted,
    IdentitySwept,
}

impl EventType {
    /// The events' `detail-type`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::IdentityCreated => "IdentityCreated",
            EventType::TokensRevoked => "TokensRevoked",
            EventType::IdentityDeleted => "IdentityDeleted",
            EventType::IdentitySwept => "IdentitySwept",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SweepReason {
    /// A guest (ephemeral identity) past its expiry, removed by TTL or by the sweep.
    Expired,
    /// No token issued for longer than the configured retention.
    Inactive,
}

/// An event's `detail`. Ids, the customId, the kind, times and the revocation epoch:
/// never a token, a key or a provider token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    pub schema_version: u32,
    /// The change's id (the stream record's): subscribers can recognise a repeat by it.
    pub change_id: String,
    pub occurred_at: String,
    pub identity: IdentityDetail,
    /// TokensRevoked: tokens carrying an epoch below this one are revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SweepReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityDetail {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    /// `stable` or `guest`.
    pub kind: &'static str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub event_type: EventType,
    pub at: DateTime<Utc>,
    pub detail: EventDetail,
}

impl LifecycleEvent {
    fn new(change: &IdentityChange, event_type: EventType, identity: &Identity) -> Self {
        let expires_at = match identity.kind {
            IdentityKind::Stable => None,
            IdentityKind::Ephemeral { expires_at } => Some(wire_time(expires_at)),
        };
        Self {
            event_type,
            at: change.at,
            detail: EventDetail {
                schema_version: SCHEMA_VERSION,
                change_id: change.change_id.clone(),
                occurred_at: wire_time(change.at),
                identity: IdentityDetail {
                    id: identity.id.to_string(),
                    custom_id: identity.custom_id.as_ref().map(|c| c.as_str().to_owned()),
                    kind: if expires_at.is_some() {
                        "guest"
                    } else {
                        "stable"
                    },
                    created_at: wire_time(identity.created_at),
                    expires_at,
                },
                revocation_epoch: None,
                reason: None,
            },
        }
    }

    pub fn change_id(&self) -> &str {
        &self.detail.change_id
    }
}

/// `events` in order, split into `PutEvents` calls of at most ten, none with two events of
/// one identity.
fn calls<'a>(events: &'a [&'a (usize, LifecycleEvent)]) -> Vec<&'a [&'a (usize, LifecycleEvent)]> {
    let mut calls = Vec::new();
    let mut start = 0;
    for end in 0..events.len() {
        let identity = &events[end].1.detail.identity.id;
        let repeated = events[start..end]
            .iter()
            .any(|(_, e)| &e.detail.identity.id == identity);
        if end - start == ENTRIES_PER_CALL || repeated {
            calls.push(&events[start..end]);
            start = end;
        }
    }
    if start < events.len() {
        calls.push(&events[start..]);
    }
    calls
}

fn wire_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Publishes the lifecycle events of one region's identity changes.
pub struct LifecyclePublisher {
    pub ledger: Arc<dyn EventLedger>,
    pub bus: Arc<dyn EventBus>,
    /// None: one region, every identity is homed here.
    pub placement: Option<Placement>,
}

/// What became of a batch of changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    pub published: usize,
    /// Already published by an earlier delivery.
    pub repeats: usize,
    /// The first change not done: it and every later change are to be delivered again
    /// (those already published are then skipped). None: the batch is done.
    pub failed_at: Option<usize>,
}

impl LifecyclePublisher {
    /// Publishes, in order, an event for each change that makes one, skipping those an
    /// earlier delivery published. It stops at the first change it cannot handle, and no
    /// later event of the same identity goes out before it (one `PutEvents` call never
    /// carries two events of one identity, since EventBridge may take the entries after
    /// one it refuses).
    pub async fn publish(&self, changes: &[IdentityChange]) -> Published {
        let mut outcome = Published::default();
        let mut events = Vec::new();
        for (at, change) in changes.iter().enumerate() {
            match self.event_for(change).await {
                Ok(Some(event)) => events.push((at, event)),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "lifecycle change not classified");
                    outcome.failed_at = Some(at);
                    break;
                }
            }
        }
        let ids: Vec<&str> = events.iter().map(|(_, e)| e.change_id()).collect();
        let published = match self.ledger.published(&ids).await {
            Ok(published) => published,
            Err(error) => {
                tracing::warn!(%error, "lifecycle ledger not read");
                outcome.failed_at = events.first().map(|(at, _)| *at).or(outcome.failed_at);
                return outcome;
            }
        };
        let (repeats, fresh): (Vec<_>, Vec<_>) = events
            .iter()
            .partition(|(_, event)| published.contains(event.change_id()));
        outcome.repeats = repeats.len();
        let mut sent = Vec::new();
        for chunk in calls(&fresh) {
            let batch: Vec<&LifecycleEvent> = chunk.iter().map(|(_, event)| event).collect();
            // An error leaves the outcome unknown: EventBridge may have taken some.
            let accepted = self.bus.publish(&batch).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "lifecycle events not published");
                vec![false; batch.len()]
            });
            let mut refused = None;
            for (i, (at, event)) in chunk.iter().enumerate() {
                // An entry the bus gave no answer for counts as refused.
                if accepted.get(i).copied().unwrap_or(false) {
                    sent.push(event.change_id());
                } else if refused.is_none() {
                    refused = Some(*at);
                }
            }
            if refused.is_some() {
                outcome.failed_at = refused;
                break;
            }
        }
        outcome.published = sent.len();
        if let Err(error) = self.ledger.mark_published(&sent).await {
            // They are out: a redelivery (only after a later failure) would repeat them.
            tracing::warn!(%error, count = sent.len(), "published events not marked");
        }
        outcome
    }

    /// The event a change makes, if it makes one and its identity is homed here.
    async fn event_for(
        &self,
        change: &IdentityChange,
    ) -> Result<Option<LifecycleEvent>, StoreError> {
        let Some(identity) = change.after.as_ref().or(change.before.as_ref()) else {
            return Ok(None);
        };
        if let Some(placement) = &self.placement
            && !placement.is_home_of(&identity.id)
        {
            return Ok(None);
        }
        Ok(match (&change.before, &change.after) {
            (None, Some(created)) => Some(LifecycleEvent::new(
                change,
                EventType::IdentityCreated,
                created,
            )),
            (Some(before), Some(after)) if after.revocation_epoch > before.revocation_epoch => {
                let mut event = LifecycleEvent::new(change, EventType::TokensRevoked, after);
                event.detail.revocation_epoch = Some(after.revocation_epoch);
                Some(event)
            }
            (Some(_), Some(_)) => None,
            (Some(removed), None) => Some(self.removal(change, removed).await?),
            (None, None) => None,
        })
    }

    async fn removal(
        &self,
        change: &IdentityChange,
        removed: &Identity,
    ) -> Result<LifecycleEvent, StoreError> {
        // Past its expiry, whoever removed it (TTL, the sweep): no need to ask the ledger.
        let reason = if removed.is_live_at(change.at) {
            self.ledger.swept(&removed.id).await?
        } else {
            Some(SweepReason::Expired)
        };
        Ok(match reason {
            Some(reason) => {
                let mut event = LifecycleEvent::new(change, EventType::IdentitySwept, removed);
                event.detail.reason = Some(reason);
                event
            }
            None => LifecycleEvent::new(change, EventType::IdentityDeleted, removed),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::Duration as Span;

    use super::*;
    use crate::domain::identity::{CustomId, IdentityId, ResourceId};
    use crate::domain::ports::PublishError;

    #[derive(Default)]
    struct Ledger {
        published: Mutex<HashSet<String>>,
        swept: HashMap<String, SweepReason>,
        /// Identities whose sweep mark cannot be read.
        unreadable: HashSet<String>,
    }

    #[async_trait]
    impl EventLedger for Ledger {
        async fn published(&self, change_ids: &[&str]) -> Result<HashSet<String>, StoreError> {
            let published = self.published.lock().unwrap();
            Ok(change_ids
                .iter()
                .filter(|id| published.contains(**id))
                .map(|id| (*id).to_owned())
                .collect())
        }
        async fn mark_published(&self, change_ids: &[&str]) -> Result<(), StoreError> {
            let mut published = self.published.lock().unwrap();
            published.extend(change_ids.iter().map(|id| (*id).to_owned()));
            Ok(())
        }
        async fn swept(&self, id: &IdentityId) -> Result<Option<SweepReason>, StoreError> {
            if self.unreadable.contains(id.as_str()) {
                return Err(StoreError::Unavailable("throttled".into()));
            }
            Ok(self.swept.get(id.as_str()).copied())
        }
    }

    #[derive(Default)]
    struct Bus {
        sent: Mutex<Vec<LifecycleEvent>>,
        refuse: Mutex<HashSet<String>>,
        down: Mutex<bool>,
    }

    #[async_trait]
    impl EventBus for Bus {
        async fn publish(&self, events: &[&LifecycleEvent]) -> Result<Vec<bool>, PublishError> {
            assert!(events.len() <= ENTRIES_PER_CALL);
            if *self.down.lock().unwrap() {
                return Err(PublishError("bus unreachable".into()));
            }
            let refuse = self.refuse.lock().unwrap();
            Ok(events
                .iter()
                .map(|event| {
                    let accepted = !refuse.contains(event.change_id());
                    if accepted {
                        self.sent.lock().unwrap().push((*event).clone());
                    }
                    accepted
                })
                .collect())
        }
    }

    fn identity(kind: IdentityKind, custom_id: Option<&str>, id: Option<IdentityId>) -> Identity {
        let mut identity = Identity::new_stable(
            id.unwrap_or_else(|| IdentityId::new(ResourceId::random())),
            custom_id.map(|c| CustomId::parse(c).unwrap()),
            Utc::now() - Span::days(1),
        );
        identity.kind = kind;
        identity
    }

    fn change(n: usize, before: Option<&Identity>, after: Option<&Identity>) -> IdentityChange {
        IdentityChange {
            change_id: format!("change-{n}"),
            at: Utc::now(),
            before: before.cloned(),
            after: after.cloned(),
        }
    }

    fn created(count: usize) -> Vec<IdentityChange> {
        (0..count)
            .map(|n| change(n, None, Some(&identity(IdentityKind::Stable, None, None))))
            .collect()
    }

    fn publisher(ledger: &Arc<Ledger>, bus: &Arc<Bus>) -> LifecyclePublisher {
        LifecyclePublisher {
            ledger: ledger.clone(),
            bus: bus.clone(),
            placement: None,
        }
    }

    fn sent_ids(bus: &Bus) -> Vec<String> {
        let sent = bus.sent.lock().unwrap();
        sent.iter().map(|e| e.change_id().to_owned()).collect()
    }

    #[tokio::test]
    async fn each_change_makes_its_event_and_other_changes_none() {
        let stable = identity(IdentityKind::Stable, Some("alice"), None);
        let mut used = stable.clone();
        used.last_token_issued_at = Some(Utc::now());
        let mut revoked = used.clone();
        revoked.revocation_epoch = 1;
        let guest = identity(
            IdentityKind::Ephemeral {
                expires_at: Utc::now() - Span::minutes(1),
            },
            None,
            None,
        );
        let idle = identity(IdentityKind::Stable, None, None);
        let ledger = Arc::new(Ledger {
            swept: HashMap::from([(idle.id.to_string(), SweepReason::Inactive)]),
            ..Ledger::default()
        });
        let bus = Arc::new(Bus::default());
        let changes = [
            change(1, None, Some(&stable)),
            change(2, Some(&stable), Some(&used)),
            change(3, Some(&used), Some(&revoked)),
            change(4, Some(&revoked), None),
            change(5, Some(&guest), None),
            change(6, Some(&idle), None),
        ];
        let outcome = publisher(&ledger, &bus).publish(&changes).await;
        assert_eq!((outcome.published, outcome.failed_at), (5, None));
        let sent = bus.sent.lock().unwrap();
        let types: Vec<_> = sent
            .iter()
            .map(|e| (e.event_type, e.detail.reason))
            .collect();
        assert_eq!(
            types,
            [
                (EventType::IdentityCreated, None),
                (EventType::TokensRevoked, None),
                (EventType::IdentityDeleted, None),
                (EventType::IdentitySwept, Some(SweepReason::Expired)),
                (EventType::IdentitySwept, Some(SweepReason::Inactive)),
            ]
        );
        assert_eq!(sent[1].detail.revocation_epoch, Some(1));
        let created = serde_json::to_value(&sent[0].detail).unwrap();
        assert_eq!(created["identity"]["customId"], "alice");
        assert_eq!(created["identity"]["kind"], "stable");
        assert_eq!(created["schemaVersion"], 1);
        assert_eq!(created["changeId"], "change-1");
        let swept = serde_json::to_value(&sent[3].detail).unwrap();
        assert_eq!(swept["identity"]["kind"], "guest");
        assert_eq!(swept["reason"], "expired");
    }

    #[tokio::test]
    async fn a_refused_change_stops_the_batch_and_its_redelivery_publishes_each_event_once() {
        let ledger = Arc::new(Ledger::default());
        let bus = Arc::new(Bus::default());
        let publisher = publisher(&ledger, &bus);
        let changes = created(12);
        bus.refuse.lock().unwrap().insert("change-3".into());
        let first = publisher.publish(&changes).await;
        // EventBridge took the rest of change-3's call; nothing after that call went out.
        assert_eq!((first.published, first.failed_at), (9, Some(3)));
        assert!(!sent_ids(&bus).contains(&"change-10".to_owned()));

        // Lambda delivers again from change-3.
        bus.refuse.lock().unwrap().clear();
        let again = publisher.publish(&changes[3..]).await;
        assert_eq!((again.published, again.repeats), (3, 6));
        assert_eq!(again.failed_at, None);
        let mut sent = sent_ids(&bus);
        sent.sort();
        let mut expected: Vec<String> = (0..12).map(|n| format!("change-{n}")).collect();
        expected.sort();
        assert_eq!(sent, expected, "each event once");
    }

    #[tokio::test]
    async fn a_refused_event_holds_back_every_later_event_of_its_identity() {
        let ledger = Arc::new(Ledger::default());
        let bus = Arc::new(Bus::default());
        let alice = identity(IdentityKind::Stable, None, None);
        let mut revoked = alice.clone();
        revoked.revocation_epoch = 1;
        let others = created(3);
        let changes = [
            change(100, None, Some(&alice)),
            others[0].clone(),
            change(101, Some(&alice), Some(&revoked)),
            others[1].clone(),
            change(102, Some(&revoked), None),
            others[2].clone(),
        ];
        bus.refuse.lock().unwrap().insert("change-100".into());
        let first = publisher(&ledger, &bus).publish(&changes).await;
        assert_eq!(first.failed_at, Some(0));
        assert!(
            !sent_ids(&bus)
                .iter()
                .any(|id| id == "change-101" || id == "change-102"),
            "alice's revoke and delete wait for her create"
        );
        bus.refuse.lock().unwrap().clear();
        let again = publisher(&ledger, &bus).publish(&changes).await;
        assert_eq!(again.failed_at, None);
        let sent = sent_ids(&bus);
        let position = |id: &str| sent.iter().position(|s| s == id).unwrap();
        assert!(position("change-100") < position("change-101"));
        assert!(position("change-101") < position("change-102"));
        assert_eq!(sent.len(), 6, "each event once");
    }

    #[tokio::test]
    async fn an_unreachable_bus_or_ledger_publishes_nothing_and_asks_for_the_batch_again() {
        let ledger = Arc::new(Ledger::default());
        let bus = Arc::new(Bus::default());
        let publisher = publisher(&ledger, &bus);
        let changes = created(2);
        *bus.down.lock().unwrap() = true;
        assert_eq!(publisher.publish(&changes).await.failed_at, Some(0));
        *bus.down.lock().unwrap() = false;
        assert_eq!(publisher.publish(&changes).await.published, 2);

        // A removal whose sweep mark cannot be read: the changes before it go out, it and
        // the later ones wait for the next delivery.
        let removed = identity(IdentityKind::Stable, None, None);
        let ledger = Arc::new(Ledger {
            unreadable: HashSet::from([removed.id.to_string()]),
            ..Ledger::default()
        });
        let bus = Arc::new(Bus::default());
        let mut changes = created(3);
        changes.insert(1, change(7, Some(&removed), None));
        let outcome = self::publisher(&ledger, &bus).publish(&changes).await;
        assert_eq!((outcome.published, outcome.failed_at), (1, Some(1)));
        assert_eq!(sent_ids(&bus), ["change-0"]);
    }

    #[tokio::test]
    async fn only_the_home_region_publishes_an_identity_s_events() {
        let regions = ["us-east-1".to_owned(), "eu-west-1".to_owned()];
        let here = Placement::new("us-east-1", &regions).unwrap();
        let resource = ResourceId::random();
        let homed_here = identity(
            IdentityKind::Stable,
            None,
            Some(here.new_id(resource, "us-east-1")),
        );
        let homed_there = identity(
            IdentityKind::Stable,
            None,
            Some(here.new_id(resource, "eu-west-1")),
        );
        let bus = Arc::new(Bus::default());
        let publisher = LifecyclePublisher {
            ledger: Arc::new(Ledger::default()),
            bus: bus.clone(),
            placement: Some(here.clone()),
        };
        let outcome = publisher
            .publish(&[
                change(1, None, Some(&homed_here)),
                change(2, None, Some(&homed_there)),
                change(3, Some(&homed_there), None),
            ])
            .await;
        assert_eq!(outcome.published, 1);
        assert_eq!(
            bus.sent.lock().unwrap()[0].detail.identity.id,
            homed_here.id.to_string()
        );
    }
}
