//! What the user subgraph tells the others, on the [`crate::streams::LOG`] stream (where the activity log
//! stores it too): [`REGISTERED`], which the vessel subgraph projects into the owners it accepts.

use serde::{Deserialize, Serialize};
use shippy_kit::events::Event;
use uuid::Uuid;

use crate::streams;

/// A user registered ([`Registered`]).
pub const REGISTERED: &str = "user.registered";

/// The service that records [`REGISTERED`]: the user subgraph. Every service writes to the log
/// stream, so a consumer that acts on a registration checks who sent it.
pub const PUBLISHER: &str = "user";

/// Payload of [`REGISTERED`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The new user's id (the `sub` of their tokens).
    pub user_id: Uuid,
    /// Display name, for messages.
    #[serde(default)]
    pub name: String,
    /// Company, if given.
    #[serde(default)]
    pub company: Option<String>,
}

impl Registered {
    /// The [`REGISTERED`] event (on the log stream, addressed to the user) recorded by `service`.
    pub fn event(&self, service: &str) -> Result<Event, serde_json::Error> {
        crate::event(
            streams::LOG,
            service,
            REGISTERED,
            Some(self.user_id.to_string()),
            format!("{} registered", self.name),
            self,
        )
    }
}
