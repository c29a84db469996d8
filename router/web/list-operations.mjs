// Prints, as a JSON array, every GraphQL operation text the web UI can send: the first-party
// manifest (router/web/persisted-documents.json) is generated from it by
// tests/first_party_documents.rs. Run with node; no build step.
import { allOperations } from "./operations.js";

process.stdout.write(JSON.stringify(allOperations()));
