//! The `user` subgraph: users, registration, login and JWT issuing.
