//! Limits of GraphQL WebSocket connections, shared by the router and the subgraphs.
