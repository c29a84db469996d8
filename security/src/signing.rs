//! Router-to-subgraph request credentials: the router signs every request; subgraphs verify.
