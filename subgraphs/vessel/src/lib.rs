//! The `vessel` subgraph: vessels and finding one that fits.
