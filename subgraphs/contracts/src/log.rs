//! Activity-log events: any subgraph records them, the log subgraph stores them. Their kinds and payloads
//! are the recording service's own (the log keeps them as they come), so only the stream is shared.

use shippy_kit::events::Event;

use crate::streams;

/// A new log event (stream [`streams::LOG`]) recorded by `service`.
pub fn event(
    service: &str,
    kind: &str,
    user_id: Option<String>,
    message: impl Into<String>,
    payload: serde_json::Value,
) -> Event {
    Event::new(streams::LOG, service, kind, user_id, message, payload)
}
