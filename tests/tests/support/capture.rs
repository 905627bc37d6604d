//! A process-wide `tracing` subscriber that records every span's and every event's fields, for
//! tests that check what the logging and tracing middleware emit.
//!
//! Tests in one binary run in parallel and share it: each test names its services uniquely and
//! only looks at the records that mention them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

/// A span's or an event's fields, as text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(pub HashMap<String, String>);

impl Fields {
    /// The field's value as text, if recorded.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The field's value; panics naming the field when it is missing.
    pub fn at(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no field {name:?} in {self:?}"))
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// A recorded event.
#[derive(Clone, Debug)]
pub struct CapturedEvent {
    /// Its level.
    pub level: Level,
    /// Its target (the module that emitted it).
    pub target: String,
    /// Its fields; the message is `message`.
    pub fields: Fields,
}

#[derive(Default)]
struct Store {
    spans: Vec<Fields>,
    /// Live span ids to their index in `spans` (the registry reuses ids of closed spans).
    live: HashMap<u64, usize>,
    events: Vec<CapturedEvent>,
}

static STORE: Mutex<Option<Store>> = Mutex::new(None);

fn with_store<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    let mut guard = STORE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Store::default))
}

struct Capture;

impl<S: Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        with_store(|store| {
            store.spans.push(fields);
            let index = store.spans.len() - 1;
            store.live.insert(id.into_u64(), index);
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        with_store(|store| {
            if let Some(&index) = store.live.get(&id.into_u64()) {
                values.record(&mut store.spans[index]);
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let captured = CapturedEvent {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        };
        with_store(|store| store.events.push(captured));
    }
}

/// Installs the capturing subscriber as the global default (once per test binary).
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(Registry::default().with(Capture))
            .expect("no other global subscriber in this test binary");
    });
}

/// The fields of every span recorded so far for which `keep` holds.
pub fn spans(keep: impl Fn(&Fields) -> bool) -> Vec<Fields> {
    with_store(|store| store.spans.iter().filter(|f| keep(f)).cloned().collect())
}

/// Every event recorded so far for which `keep` holds.
pub fn events(keep: impl Fn(&CapturedEvent) -> bool) -> Vec<CapturedEvent> {
    with_store(|store| store.events.iter().filter(|e| keep(e)).cloned().collect())
}

/// Waits (at most 5 s) until `ready` holds, then returns; panics with `what` otherwise.
pub async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

/// Bounds `future` to 5 s.
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("the call finished within 5 s")
}
