//! Fault injection, for the test suite only. Compiled in only with the cargo feature `faults`
//! (`scripts/build.sh faults` builds it into `build-faults/`, started by the testkit with
//! `Options::faults`); what `wrangler deploy` ships has none of it (tests/deploy.rs checks the
//! bundle). Without the feature every hook below is a no-op the compiler removes.
//!
//! A request names its faults in one header, `x-r2mpu-fault: POINT=ACTION[,POINT=ACTION]`.
//! The points, few and named:
//! - `part.after-r2`: in the Worker, after R2's `uploadPart` succeeded, before the part is
//!   recorded. `fail` (the Durable Object is not reached) or `pause:MS`.
//! - `complete.before-r2`: in the Durable Object, after the upload is marked `completing`,
//!   before R2's `complete`. `pause:MS` (other requests and the alarm run meanwhile) or `fail`.
//! - `complete.after-r2`: after R2's `complete` succeeded, before the record is written: `fail`.
//! - `append.after-r2`: in the Worker, after R2 took a part of a tus or draft append, before
//!   it is recorded, its lease still renewed: `pause:MS` (a second append meets it) or `fail`.
//! - `append.after-record`: in the Durable Object, after an `Append` was recorded, before its
//!   answer: `fail` (the Worker is told `500` of an append that took effect).
//!
//! `fail` in the Durable Object is a reset of its instance as far as the upload can tell:
//! nothing more is written and the complete's in-memory lease dies with the request. (The
//! runtime's own `state.abort()` is no use here: under `wrangler dev` it poisons the wasm
//! instance the Worker shares with the Durable Object. tests/crash.rs kills the real thing.)
//! - `r2.forget`: R2 drops the multipart upload behind our back (as after its seven days),
//!   before a part or complete reaches it. Action `now`.
//! - `r2.overwrite`: before R2's `complete`, R2 gets other bytes (zeros) for a recorded part
//!   behind the record's back, so that R2 answers `InvalidPart`. Action `part:N`.
//! - `index.update`: the owner's index update of a create fails (`fail`), as if its Durable
//!   Object were unreachable; the update is kept for the alarm to retry.
//! - `tag`: no point; `tag=NAME` names the request in the `{"fault":"paused"|"resumed",..}`
//!   line every pause logs at its start and end (the testkit's `Worker::wait_for_log`).
//! - `r2.get`, `r2.head`, `r2.list`, `r2.create`, `r2.upload-part`, `r2.append-part`
//!   (a part of a tus or draft append), `r2.complete`: that R2
//!   call fails (`fail`); `r2.create` also takes `pause:MS`, a slow create.

use serde::{Deserialize, Serialize};

use crate::error::ApiResult;

/// Logs, in the fault build only, what the alarm of upload `upload_id` decided and whether it
/// was due (its upload past `expiresAt`): `{"fault":"alarm",..}`, so a test sees an alarm fire
/// where no request is there to carry a tag (tests/lifecycle.rs).
#[allow(unused_variables)]
pub fn alarm_fired(upload_id: &str, due: bool, decision: &dyn std::fmt::Debug) {
    #[cfg(feature = "faults")]
    {
        let decision = format!("{decision:?}");
        let line = serde_json::json!({"fault": "alarm", "uploadId": upload_id, "due": due, "decision": decision});
        worker::console_log!("{line}");
    }
}

/// The faults one request asked for; travels to the Durable Object with its command.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    #[cfg(feature = "faults")]
    #[serde(default)]
    wanted: Vec<(String, String)>,
}

/// What to do at a point, beyond failing or pausing (which [`Faults::at`] does itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Now,
    Part(u16),
}

impl Faults {
    /// The faults the request's `X-R2mpu-Fault` header names (none, without the feature: the
    /// header's name is not even in the deployed bundle, tests/deploy.rs checks).
    #[allow(unused_variables)]
    pub fn of(req: &worker::Request) -> Faults {
        #[cfg(feature = "faults")]
        {
            let header = req.headers().get("x-r2mpu-fault").ok().flatten().unwrap_or_default();
            let wanted = header
                .split(',')
                .filter_map(|item| item.trim().split_once('='))
                .map(|(point, action)| (point.trim().to_string(), action.trim().to_string()))
                .collect();
            return Faults { wanted };
        }
        #[allow(unreachable_code)]
        Faults::default()
    }

    /// Reaches `point`: fails (`Internal`, logged like a runtime failure) or pauses there if
    /// asked to, and returns any other action for the caller to carry out.
    #[allow(unused_variables)]
    pub async fn at(&self, point: &str) -> ApiResult<Option<Action>> {
        #[cfg(feature = "faults")]
        for (wanted, action) in &self.wanted {
            if wanted != point {
                continue;
            }
            if let Some(ms) = action.strip_prefix("pause:") {
                let ms: u64 = ms.parse().unwrap_or(0);
                self.log("paused", point, ms);
                worker::Delay::from(std::time::Duration::from_millis(ms)).await;
                self.log("resumed", point, ms);
                continue;
            }
            return match action.as_str() {
                "now" => Ok(Some(Action::Now)),
                other if other.starts_with("part:") => Ok(other[5..].parse().ok().map(Action::Part)),
                _ => Err(crate::error::internal(point, "injected fault")),
            };
        }
        Ok(None)
    }

    /// Logs a pause's start or end as one JSON line with the request's `tag`, so that a test
    /// sees a held request really reach its pause (and leave it) instead of sleeping on it.
    #[cfg(feature = "faults")]
    fn log(&self, event: &str, point: &str, ms: u64) {
        let tag = self.wanted.iter().find(|(name, _)| name == "tag").map(|(_, tag)| tag.as_str());
        let line = serde_json::json!({"fault": event, "point": point, "ms": ms, "tag": tag});
        worker::console_log!("{line}");
    }

    /// Before an R2 call `r2.OP`: fails it if asked to.
    #[allow(unused_variables)]
    pub async fn r2(&self, op: &str) -> ApiResult<()> {
        #[cfg(feature = "faults")]
        if self.at(&format!("r2.{op}")).await?.is_some() {
            return Err(crate::error::internal(op, "injected fault"));
        }
        Ok(())
    }
}
