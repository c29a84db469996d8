-- One database per subgraph: each owns its data and migrates it itself on start.
-- Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
CREATE DATABASE "user";
CREATE DATABASE vessel;
CREATE DATABASE consignment;
CREATE DATABASE log;
