// The four schema checks: drift, composition, stale supergraph, breaking changes against a base.

import fs from 'node:fs';
import path from 'node:path';
import { CriticalityLevel, diff } from '@graphql-inspector/core';
import { apiSchema, ownersOf, ownership } from './api-schema.mjs';
import { readAtCommit } from './git.mjs';

/** Where two texts first differ, by line (1-based), or null when they are equal. */
export function firstDifference(expected, actual) {
  if (expected === actual) return null;
  const a = expected.split('\n');
  const b = actual.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    if (a[i] !== b[i]) return { line: i + 1, expected: a[i] ?? null, actual: b[i] ?? null };
  }
  // Only reachable when the texts differ in something split() hides, such as a trailing "\r".
  return { line: a.length, expected: a.at(-1) ?? null, actual: b.at(-1) ?? null };
}

function describeDifference(d, expectedName, actualName) {
  const show = (s) => (s === null ? '<end of file>' : JSON.stringify(s));
  return `first difference at line ${d.line}: ${expectedName} has ${show(d.expected)}, ${actualName} has ${show(d.actual)}`;
}

/**
 * Drift: every subgraph's exported SDL (what the code serves) must equal the committed SDL file. The export
 * directory mirrors the schema directory (`shippy schema export --out DIR` writes `DIR/<name>.graphql`).
 *
 * @param {import('./config.mjs').Subgraph[]} subgraphs
 * @param {string} schemaDir
 * @param {string | undefined} exportedDir
 */
export function checkDrift(subgraphs, schemaDir, exportedDir) {
  if (exportedDir === undefined) {
    return {
      status: 'skipped',
      note: 'no exported SDL given (--exported DIR); `shippy schema check` exports it from the code',
      subgraphs: [],
    };
  }
  if (!fs.existsSync(exportedDir) || !fs.statSync(exportedDir).isDirectory()) {
    return {
      status: 'failed',
      note: `the export directory ${exportedDir} does not exist`,
      subgraphs: [],
    };
  }
  const results = subgraphs.map((s) => {
    const exportedPath = path.join(exportedDir, s.sdl);
    const committed = fs.existsSync(s.sdlPath) ? fs.readFileSync(s.sdlPath, 'utf8') : null;
    const exported = fs.existsSync(exportedPath) ? fs.readFileSync(exportedPath, 'utf8') : null;
    if (committed === null && exported === null) {
      return { name: s.name, status: 'not-built', message: 'no code and no SDL file yet' };
    }
    if (committed === null) {
      return { name: s.name, status: 'not-committed', message: `${s.sdl} is missing; run \`shippy schema export\` and commit it` };
    }
    if (exported === null) {
      return { name: s.name, status: 'not-exported', message: `${s.sdl} is committed but the code exports no such subgraph` };
    }
    const d = firstDifference(committed, exported);
    if (d) {
      return {
        name: s.name,
        status: 'differs',
        message: `${s.sdl} differs from the exported SDL; run \`shippy schema export\` (${describeDifference(d, 'committed', 'exported')})`,
      };
    }
    return { name: s.name, status: 'ok', message: `${s.sdl} matches the code` };
  });
  const listed = new Set(subgraphs.map((s) => s.sdl));
  for (const file of fs.readdirSync(exportedDir).filter((f) => f.endsWith('.graphql')).sort()) {
    // The export never writes the supergraph; skipping it lets `--exported` point at a schema directory.
    if (!listed.has(file) && file !== 'supergraph.graphql') {
      results.push({
        name: path.basename(file, '.graphql'),
        status: 'unlisted',
        message: `the code exports ${file} but subgraphs.json does not list it`,
      });
    }
  }
  const failed = results.some((r) => !['ok', 'not-built'].includes(r.status));
  return { status: failed ? 'failed' : 'passed', note: null, subgraphs: results };
}

/**
 * Stale supergraph: the committed supergraph.graphql must be exactly what composition produces now.
 *
 * @param {string} composedSdl
 * @param {string} supergraphPath
 */
export function checkSupergraph(composedSdl, supergraphPath) {
  const name = path.basename(supergraphPath);
  if (!fs.existsSync(supergraphPath)) {
    return { status: 'failed', message: `${name} is missing; run \`shippy schema compose\` and commit it` };
  }
  const d = firstDifference(fs.readFileSync(supergraphPath, 'utf8'), composedSdl);
  if (d) {
    return {
      status: 'failed',
      message: `${name} is stale; run \`shippy schema compose\` and commit it (${describeDifference(d, 'committed', 'composed')})`,
    };
  }
  return { status: 'passed', message: `${name} is up to date` };
}

const LEVELS = {
  [CriticalityLevel.Breaking]: 'BREAKING',
  [CriticalityLevel.Dangerous]: 'DANGEROUS',
  [CriticalityLevel.NonBreaking]: 'SAFE',
};
const ORDER = { BREAKING: 0, DANGEROUS: 1, SAFE: 2 };

/**
 * Breaking changes: diffs the API schema of the new supergraph against the supergraph committed at the base.
 * A BREAKING change fails the check unless approved; DANGEROUS and SAFE changes are listed only.
 *
 * @param {{ composedSdl: string, schemaDir: string, resolution: import('./git.mjs').BaseResolution,
 *           approvals: import('./approvals.mjs').Approval[] }} input
 */
export async function checkChanges({ composedSdl, schemaDir, resolution, approvals }) {
  const { base } = resolution;
  if (!base) {
    return { status: 'skipped', base: null, note: `no base to compare with: ${resolution.note}`, changes: [], unusedApprovals: [] };
  }
  const baseSdl = readAtCommit(schemaDir, base.commit, 'supergraph.graphql');
  if (baseSdl === null) {
    return {
      status: 'skipped',
      base,
      note: `no supergraph.graphql at ${base.commit.slice(0, 12)}: nothing to compare with`,
      changes: [],
      unusedApprovals: [],
    };
  }
  let oldSchema;
  let baseOwners;
  try {
    oldSchema = apiSchema(baseSdl);
    baseOwners = ownership(baseSdl);
  } catch (err) {
    return {
      status: 'failed',
      base,
      note: `the supergraph.graphql at ${base.commit.slice(0, 12)} cannot be read (${err.message}); pass --base with another commit`,
      changes: [],
      unusedApprovals: [],
    };
  }
  const newOwners = ownership(composedSdl);
  const raw = await diff(oldSchema, apiSchema(composedSdl));

  const used = new Set();
  const changes = raw.map((change) => {
    const criticality = LEVELS[change.criticality.level] ?? 'BREAKING';
    const entry = {
      criticality,
      type: change.type,
      path: change.path ?? null,
      message: change.message,
      subgraphs: ownersOf(change.path, newOwners, baseOwners),
      approved: false,
      reason: null,
    };
    if (criticality === 'BREAKING') {
      const approval = approvals.find((a) => a.type === entry.type && a.path === entry.path);
      if (approval) {
        used.add(approval);
        entry.approved = true;
        entry.reason = approval.reason;
      }
    }
    return entry;
  });
  changes.sort((a, b) => ORDER[a.criticality] - ORDER[b.criticality]);
  const failed = changes.some((c) => c.criticality === 'BREAKING' && !c.approved);
  return {
    status: failed ? 'failed' : 'passed',
    base,
    note: null,
    changes,
    unusedApprovals: approvals.filter((a) => !used.has(a)),
  };
}
