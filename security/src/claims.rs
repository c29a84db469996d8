//! One JWT verification policy (RFC 8725) for the router and the subgraphs.
