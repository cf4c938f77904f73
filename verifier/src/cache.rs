//! A value loaded once and kept fresh by itself: the key sets of a running function or
//! verifier. Readers never wait on the source while a value is cached.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::keys::KeyError;

/// A background refresh that hangs (say, on a connection that died while the sandbox was
/// frozen) must not block every later one.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);
/// A forced fetch runs on a request's path: it gets less time than a background one.
const FORCED_TIMEOUT: Duration = Duration::from_secs(2);

/// The metric every refresh counts, by `Keys` (what is cached) and `Result` (ok, failed).
pub const KEY_REFRESHES: &str = "KeyRefreshes";

fn count_refresh(what: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!(KEY_REFRESHES, "Keys" => what, "Result" => result).increment(1);
}

type Fetch<T> =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, KeyError>> + Send>> + Send + Sync>;

/// A cached value with its own fetch. `get` answers from memory and, once the value is
/// older than `ttl`, starts one background refresh (never two at once); a failed refresh
/// keeps the old value. `refresh_now` fetches on demand (a token named an unknown kid),
/// at most once per interval, with concurrent callers sharing one fetch.
pub struct Cached<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    entry: RwLock<Entry<T>>,
    ttl: Duration,
    /// What is cached, for the logs ("signing", "JWKS").
    what: &'static str,
    fetch: Fetch<T>,
    refreshing: AtomicBool,
    /// When the last forced fetch started; held while one runs.
    forced: tokio::sync::Mutex<Option<Instant>>,
}

struct Entry<T> {
    value: Arc<T>,
    loaded_at: Instant,
    /// Bumped by every stored value, so that a slow background refresh that started
    /// before a forced one cannot put an older value back.
    generation: u64,
}

/// Marks the one background refresh as running; clears the mark when dropped: when the
/// refresh ends, panics, or its task is dropped before it ever ran.
struct Running<T>(Arc<Inner<T>>);

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.0.refreshing.store(false, Ordering::Release);
    }
}

impl<T: Send + Sync + 'static> Cached<T> {
    pub fn new<F, Fut>(value: T, ttl: Duration, what: &'static str, fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, KeyError>> + Send + 'static,
    {
        Self {
            inner: Arc::new(Inner {
                entry: RwLock::new(Entry {
                    value: Arc::new(value),
                    loaded_at: Instant::now(),
                    generation: 0,
                }),
                ttl,
                what,
                fetch: Box::new(move || Box::pin(fetch())),
                refreshing: AtomicBool::new(false),
                forced: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The value in force; starts a background refresh when it is due.
    pub fn get(&self) -> Arc<T> {
        let (value, due) = {
            let entry = self.inner.read();
            let due = entry.loaded_at.elapsed() >= self.inner.ttl;
            (entry.value.clone(), due.then_some(entry.generation))
        };
        if let Some(generation) = due
            && self
                .inner
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let running = Running(self.inner.clone());
            // Outside a runtime nothing can run the refresh: `running` is dropped at once,
            // and the next caller retries.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let inner = &running.0;
                    let fresh = tokio::time::timeout(REFRESH_TIMEOUT, (inner.fetch)())
                        .await
                        .unwrap_or_else(|_| Err(KeyError::Source("refresh timed out".into())));
                    inner.finish(generation, fresh);
                });
            }
        }
        value
    }

    /// Fetches now, unless a fetch already ran within `min_interval` or finished while
    /// this caller waited for one; returns the value then in force.
    pub async fn refresh_now(&self, min_interval: Duration) -> Arc<T> {
        let inner = &self.inner;
        let seen = inner.read().generation;
        let mut last = inner.forced.lock().await;
        let recent = last.is_some_and(|at| at.elapsed() < min_interval);
        if inner.read().generation == seen && !recent {
            *last = Some(Instant::now());
            let fetched = tokio::time::timeout(FORCED_TIMEOUT, (inner.fetch)()).await;
            count_refresh(inner.what, matches!(fetched, Ok(Ok(_))));
            match fetched {
                Ok(Ok(value)) => inner.store(value),
                Ok(Err(e)) => tracing::warn!(
                    error = %e,
                    "{} key fetch failed; keeping the cached keys",
                    inner.what
                ),
                Err(_) => tracing::warn!(
                    "{} key fetch timed out; keeping the cached keys",
                    inner.what
                ),
            }
        }
        drop(last);
        inner.read().value.clone()
    }
}

impl<T> Inner<T> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entry<T>> {
        self.entry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entry<T>> {
        self.entry.write().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, value: T) {
        let mut entry = self.write();
        entry.value = Arc::new(value);
        entry.loaded_at = Instant::now();
        entry.generation += 1;
    }

    /// Stores a background refresh's value unless a newer one arrived meanwhile; on
    /// failure keeps the old one and waits another TTL before retrying.
    fn finish(&self, generation: u64, fresh: Result<T, KeyError>) {
        count_refresh(self.what, fresh.is_ok());
        let mut entry = self.write();
        match fresh {
            Ok(value) if entry.generation == generation => {
                entry.value = Arc::new(value);
                entry.generation += 1;
            }
            Ok(_) => {} // a forced refresh stored newer keys meanwhile
            Err(e) => tracing::warn!(
                error = %e,
                "{} key refresh failed; keeping the cached keys",
                self.what
            ),
        }
        entry.loaded_at = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    /// One scripted fetch: its delay in milliseconds and its result.
    type Answer = (u64, Result<i32, &'static str>);

    /// A source whose answers the test scripts: each fetch takes the next one.
    #[derive(Clone, Default)]
    struct Script {
        answers: Arc<Mutex<Vec<Answer>>>,
        fetches: Arc<AtomicUsize>,
    }

    impl Script {
        fn then(self, delay_ms: u64, answer: Result<i32, &'static str>) -> Self {
            self.answers.lock().unwrap().push((delay_ms, answer));
            self
        }

        fn cache(&self, ttl: Duration) -> Cached<i32> {
            let script = self.clone();
            Cached::new(1, ttl, "test", move || {
                let script = script.clone();
                async move {
                    script.fetches.fetch_add(1, Ordering::SeqCst);
                    let (delay, answer) = script.answers.lock().unwrap().remove(0);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    answer.map_err(|e| KeyError::Source(e.into()))
                }
            })
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    #[tokio::test]
    async fn a_stale_value_is_refreshed_in_the_background_once_at_a_time() {
        let script = Script::default().then(50, Ok(2));
        let cache = script.cache(Duration::ZERO);
        for _ in 0..10 {
            assert_eq!(*cache.get(), 1, "readers never wait for the refresh");
        }
        settle().await;
        assert_eq!(script.fetches(), 1, "one refresh for ten stale reads");
        assert_eq!(*cache.inner.read().value, 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_old_value() {
        let script = Script::default().then(0, Err("down"));
        let cache = script.cache(Duration::ZERO);
        cache.get();
        settle().await;
        assert_eq!(script.fetches(), 1);
        assert_eq!(*cache.inner.read().value, 1);
        assert!(
            !cache.inner.refreshing.load(Ordering::Acquire),
            "the next refresh may run"
        );
    }

    #[tokio::test]
    async fn a_fresh_value_is_not_refreshed() {
        let script = Script::default();
        let cache = script.cache(Duration::from_secs(3600));
        cache.get();
        settle().await;
        assert_eq!(script.fetches(), 0);
    }

    #[test]
    fn outside_a_runtime_get_still_answers() {
        let cache = Script::default().cache(Duration::ZERO);
        assert_eq!(*cache.get(), 1);
        assert!(!cache.inner.refreshing.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn a_slow_background_refresh_cannot_undo_a_forced_one() {
        // The background refresh started before the rotation was noticed, and ends last.
        let script = Script::default().then(100, Ok(2)).then(0, Ok(3));
        let cache = script.cache(Duration::ZERO);
        cache.get();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*cache.refresh_now(Duration::from_secs(60)).await, 3);
        settle().await;
        assert_eq!(script.fetches(), 2);
        assert_eq!(*cache.inner.read().value, 3);
    }

    #[tokio::test]
    async fn forced_fetches_are_rate_limited_and_shared() {
        let script = Script::default().then(50, Ok(2)).then(0, Ok(5));
        let cache = script.cache(Duration::from_secs(3600));
        let minute = Duration::from_secs(60);
        let (a, b) = tokio::join!(cache.refresh_now(minute), cache.refresh_now(minute));
        assert_eq!(
            (*a, *b),
            (2, 2),
            "the waiting caller gets the shared result"
        );
        assert_eq!(script.fetches(), 1);
        assert_eq!(*cache.refresh_now(minute).await, 2, "rate-limited");
        assert_eq!(*cache.refresh_now(Duration::ZERO).await, 5);
    }
}
