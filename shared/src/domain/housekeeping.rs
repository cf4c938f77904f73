//! Housekeeping policy: what follows the removal of an identity (its mapping goes), and
//! the scheduled retention sweep (expired guests, and idle identities when configured).

use chrono::{DateTime, Duration, Utc};

use super::identity::{Identity, IdentityKind};
use super::lifecycle::SweepReason;
use super::ports::{Housekeeping, StoreError};

/// An identity is gone (deleted, expired, swept): removes what still refers to it, its
/// customId mapping if that still points at it. Idempotent.
pub async fn on_identity_removed(
    store: &dyn Housekeeping,
    removed: &Identity,
) -> Result<(), StoreError> {
    match &removed.custom_id {
        Some(custom_id) => store.unmap_custom_id(custom_id, removed.id.as_str()).await,
        None => Ok(()),
    }
}

/// What the sweep removes, and how much it does per run.
#[derive(Debug, Clone)]
pub struct SweepPolicy {
    /// Identities with no token issued for this long are deleted; None keeps them.
    pub retention: Option<Duration>,
    pub page_size: u32,
    pub pages_per_run: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub pages: u32,
    pub scanned: u64,
    pub expired_removed: u64,
    pub inactive_removed: u64,
    /// Changed since the scan saw them (a token issued meanwhile): kept.
    pub changed_kept: u64,
    /// Removals that failed (they are retried on the next pass).
    pub failed: u64,
    /// The scan reached the end (the next run starts over); otherwise it resumes.
    pub finished: bool,
}

/// One run of the retention sweep: from the saved cursor, at most `pages_per_run` pages;
/// removes expired ephemeral identities DynamoDB's TTL has not removed yet and, with a
/// retention set, identities idle for longer; saves where it stopped.
pub async fn sweep(
    store: &dyn Housekeeping,
    policy: &SweepPolicy,
    now: DateTime<Utc>,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let mut cursor = store.sweep_cursor().await?;
    while report.pages < policy.pages_per_run {
        let (identities, next) = store
            .identities_page(cursor.as_deref(), policy.page_size)
            .await?;
        report.pages += 1;
        for identity in identities {
            report.scanned += 1;
            let Some(reason) = removal_reason(&identity, policy, now) else {
                continue;
            };
            match store.purge(&identity, reason).await {
                Ok(false) => report.changed_kept += 1,
                Ok(true) if reason == SweepReason::Expired => report.expired_removed += 1,
                Ok(true) => report.inactive_removed += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "sweep could not remove an identity");
                    report.failed += 1;
                }
            }
        }
        cursor = next;
        // Saved after every page: a run cut short resumes where it got to.
        store.save_sweep_cursor(cursor.as_deref()).await?;
        if cursor.is_none() {
            report.finished = true;
            break;
        }
    }
    tracing::info!(?report, "retention sweep");
    Ok(report)
}

/// Why the sweep removes `identity`; None: it is kept.
fn removal_reason(
    identity: &Identity,
    policy: &SweepPolicy,
    now: DateTime<Utc>,
) -> Option<SweepReason> {
    if let IdentityKind::Ephemeral { expires_at } = identity.kind
        && expires_at <= now
    {
        return Some(SweepReason::Expired);
    }
    let last_active = identity.last_token_issued_at.unwrap_or(identity.created_at);
    match policy.retention {
        Some(retention) if last_active < now - retention => Some(SweepReason::Inactive),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::domain::identity::{IdentityId, ResourceId};
    use crate::domain::ports::IdentityStore;

    fn identity(created_days_ago: i64, kind: IdentityKind) -> Identity {
        let mut identity = Identity::new_stable(
            IdentityId::new(ResourceId::random()),
            None,
            Utc::now() - Duration::days(created_days_ago),
        );
        identity.kind = kind;
        identity
    }

    #[tokio::test]
    async fn the_sweep_removes_expired_and_idle_identities_page_by_page() {
        let store = MemoryStore::new();
        let expired = IdentityKind::Ephemeral {
            expires_at: Utc::now() - Duration::minutes(1),
        };
        let live_guest = IdentityKind::Ephemeral {
            expires_at: Utc::now() + Duration::hours(1),
        };
        for _ in 0..3 {
            store.create(identity(0, expired)).await.unwrap();
        }
        store.create(identity(0, live_guest)).await.unwrap();
        store
            .create(identity(40, IdentityKind::Stable))
            .await
            .unwrap();
        let mut recent = identity(40, IdentityKind::Stable);
        recent.last_token_issued_at = Some(Utc::now() - Duration::days(1));
        store.create(recent.clone()).await.unwrap();

        let policy = SweepPolicy {
            retention: Some(Duration::days(30)),
            page_size: 2,
            pages_per_run: 2,
        };
        let first = sweep(&store, &policy, Utc::now()).await.unwrap();
        assert_eq!((first.pages, first.scanned, first.finished), (2, 4, false));
        let second = sweep(&store, &policy, Utc::now()).await.unwrap();
        assert!(second.finished);
        assert_eq!(first.expired_removed + second.expired_removed, 3);
        assert_eq!(first.inactive_removed + second.inactive_removed, 1);
        assert_eq!(
            store.sweep_cursor().await.unwrap(),
            None,
            "a finished scan starts over"
        );
        assert!(store.get(&recent.id).await.unwrap().is_some());

        let off = SweepPolicy {
            retention: None,
            ..policy
        };
        let idle = identity(400, IdentityKind::Stable);
        store.create(idle.clone()).await.unwrap();
        sweep(&store, &off, Utc::now()).await.unwrap();
        sweep(&store, &off, Utc::now()).await.unwrap();
        assert!(
            store.get(&idle.id).await.unwrap().is_some(),
            "retention is off by default"
        );
    }
}
