// Errors the schema scripts report to a person instead of a stack trace.

/**
 * A problem with how the scripts were called or configured (bad flag, malformed subgraphs.json or
 * approved-changes.yaml, unknown git ref). The scripts exit with code 2 for these, distinct from 1 (the
 * schema itself failed a check), so callers can tell "fix your config" from "fix your schema".
 */
export class UsageError extends Error {
  /**
   * @param {string} kind stable machine-readable kind, e.g. `APPROVALS_INVALID`
   * @param {string} message what is wrong and how to fix it
   */
  constructor(kind, message) {
    super(message);
    this.name = 'UsageError';
    this.kind = kind;
  }
}

/** Exit codes shared by compose.mjs and check.mjs (and mapped by src/schema_tool.rs). */
// INTERNAL (3) is a crash; it must not be 1, which node also uses for an uncaught exception, or a crash
// would read as "the schema failed".
export const EXIT = Object.freeze({ OK: 0, FAILED: 1, USAGE: 2, INTERNAL: 3 });
