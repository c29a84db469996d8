//! Shippy's trust boundary, shared by the router and every subgraph so that both ends of a call apply
//! one policy:
//! - [`signing`]: how the router proves itself on every subgraph request, and how a subgraph checks it
//!   (plus the shared-secret header any third-party router can send);
//! - [`claims`]: one JWT verification policy (RFC 8725) for the router and the subgraphs;
//! - [`connections`]: connection caps (total and per client IP) and header/body/idle timeouts of the
//!   HTTP servers;
//! - [`websocket`]: the limits of GraphQL WebSocket connections (init timeout, subscriptions per
//!   connection, message size, token expiry).

pub mod claims;
pub mod connections;
pub mod login_limits;
pub mod redis;
pub mod revocation;
pub mod signing;
pub mod websocket;
