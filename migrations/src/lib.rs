//! SeaORM migrations, one migrator per subgraph database.
