//! Shared subgraph kit: server bootstrap, database, auth context, event bus and outbox. No domain types.
