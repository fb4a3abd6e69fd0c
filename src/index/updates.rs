//! Called by each upload's own object (`crate::upload`) at its transitions: list it, stop listing
//! it, and retry an update that did not land. Best effort, written down first (see the
//! consistency notes in [`super`]).

use serde::{Deserialize, Serialize};
use worker::{Env, State};

use crate::error::cause;
use crate::faults::Faults;
use crate::index::{Entry, IndexCommand, IndexHandle};

/// The upload object's storage key for an index update that has not landed yet.
const PENDING: &str = "index-pending";

/// How soon the upload object's alarm retries an index update that failed.
pub const RETRY_MS: u64 = 30_000;

/// An update the upload object still owes the index.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    subject: String,
    command: IndexCommand,
}

/// The upload was created: list it. Best effort; see [`retry_pending`]. (`faults`: the
/// create's, so that a test can make this update fail: `index.update=fail`.)
pub async fn opened(state: &State, env: &Env, subject: &str, entry: Entry, faults: &Faults) {
    let pending = Pending { subject: subject.to_string(), command: IndexCommand::Put { entry } };
    update(state, env, pending, faults).await
}

/// The upload was completed, aborted or forgotten: stop listing it. Idempotent.
pub async fn finished(state: &State, env: &Env, subject: &str, upload_id: &str) {
    let command = IndexCommand::Remove { upload_id: upload_id.to_string() };
    update(state, env, Pending { subject: subject.to_string(), command }, &Faults::default()).await
}

/// From the upload object's alarm (set [`RETRY_MS`] ahead when an update fails, if it was due
/// later): sends the update an earlier call could not.
pub async fn retry_pending(state: &State, env: &Env) {
    let stored = state.storage().get::<String>(PENDING).await.ok().flatten();
    if let Some(pending) = stored.and_then(|json| serde_json::from_str(&json).ok()) {
        update(state, env, pending, &Faults::default()).await;
    }
}

/// Whether an update is still owed: then the upload object's alarm must fire within
/// [`RETRY_MS`], whatever else it waits for.
pub async fn pending(state: &State) -> bool {
    state.storage().get::<String>(PENDING).await.ok().flatten().is_some()
}

async fn update(state: &State, env: &Env, pending: Pending, faults: &Faults) {
    let storage = state.storage();
    // Written ahead, so that a crash between here and the index leaves the update to retry.
    let json = serde_json::to_string(&pending).unwrap_or_default();
    if let Err(e) = storage.put(PENDING, json).await {
        cause("recording the pending index update", &e);
    }
    let injected = faults.at("index.update").await.map_err(|e| worker::Error::RustError(e.to_string()));
    let sent = match injected.and_then(|_| IndexHandle::of(env, &pending.subject)) {
        Ok(index) => index.send::<()>(&pending.command).await,
        Err(e) => Err(e),
    };
    let kept = match sent {
        Ok(()) => storage.delete(PENDING).await.map(|_| ()),
        Err(e) => {
            cause("updating the upload index (kept for an alarm to retry)", &e);
            // An earlier alarm is harmless to the upload: its handler puts its own back.
            match storage.get_alarm().await {
                Ok(Some(at)) if at <= (worker::Date::now().as_millis() + RETRY_MS) as i64 => Ok(()),
                _ => storage.set_alarm(std::time::Duration::from_millis(RETRY_MS)).await,
            }
        }
    };
    if let Err(e) = kept {
        cause("after an index update", &e);
    }
}
