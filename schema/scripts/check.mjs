// `npm run check`: the schema check (drift, composition, stale supergraph, breaking changes).
//
// Usage: node scripts/check.mjs [--schema-dir DIR] [--exported DIR] [--base REF] [--json]
//   --exported DIR  the subgraph SDL as the code exports it (`shippy schema export --out DIR`); without it
//                   the drift check is skipped (`shippy schema check` always passes it)
//   --base REF      commit to diff the API schema against (default: merge base with main, else HEAD~1)
//   --json          machine-readable report on stdout instead of text
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments or configuration (the report says which),
// 3 internal error.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadApprovals } from './lib/approvals.mjs';
import { checkChanges, checkDrift, checkSupergraph } from './lib/checks.mjs';
import { composeSubgraphs, displayPath } from './lib/compose.mjs';
import { loadSubgraphs } from './lib/config.mjs';
import { EXIT, UsageError } from './lib/errors.mjs';
import { formatCompositionErrors, groupBy, plural, subgraphLabel } from './lib/format.mjs';
import { resolveBase } from './lib/git.mjs';

const USAGE = 'usage: check.mjs [--schema-dir DIR] [--exported DIR] [--base REF] [--json]';

async function run(values) {
  const schemaDir = path.resolve(values['schema-dir'] ?? fileURLToPath(new URL('..', import.meta.url)));
  // Configuration is validated before any check runs: a broken approvals file is an error even on a
  // change set that happens to need no approval.
  const subgraphs = loadSubgraphs(schemaDir);
  const approvals = loadApprovals(path.join(schemaDir, 'approved-changes.yaml'));
  const resolution = resolveBase(schemaDir, values.base);

  const drift = checkDrift(subgraphs, schemaDir, values.exported && path.resolve(values.exported));
  const outcome = composeSubgraphs(subgraphs);
  const composition = {
    status: outcome.errors.length > 0 ? 'failed' : 'passed',
    composed: outcome.composed,
    missing: outcome.missing,
    errors: outcome.errors,
  };
  // Without a composed supergraph the last two checks have nothing to look at.
  const supergraph = outcome.supergraphSdl
    ? checkSupergraph(outcome.supergraphSdl, path.join(schemaDir, 'supergraph.graphql'))
    : { status: 'skipped', message: 'composition failed' };
  const changes = outcome.supergraphSdl
    ? await checkChanges({ composedSdl: outcome.supergraphSdl, schemaDir, resolution, approvals })
    : { status: 'skipped', base: resolution.base, note: 'composition failed', changes: [], unusedApprovals: [] };

  const failedSteps = Object.entries({ drift, composition, supergraph, changes })
    .filter(([, step]) => step.status === 'failed')
    .map(([name]) => name);
  return { ok: failedSteps.length === 0, failedSteps, schemaDir, drift, composition, supergraph, changes };
}

function verdict(status) {
  return { passed: 'ok', failed: 'FAILED', skipped: 'skipped' }[status];
}

function describeBase(base) {
  const commit = base.commit.slice(0, 12);
  return base.how === 'merge-base' ? `${base.ref} (merge base ${commit})` : `${base.ref} (${commit})`;
}

function render(report) {
  const lines = [];
  const { drift, composition, supergraph, changes } = report;
  lines.push(`schema check of ${displayPath(report.schemaDir)}`);
  const missing = composition.missing.length ? ` (not built yet: ${composition.missing.join(', ')})` : '';
  lines.push(`subgraphs: ${composition.composed.join(', ') || 'none'}${missing}`);
  lines.push('');

  lines.push(`drift: ${verdict(drift.status)}${drift.note ? ` (${drift.note})` : ''}`);
  for (const s of drift.subgraphs) {
    const label = s.status === 'ok' ? 'ok' : s.status === 'not-built' ? 'not built yet' : s.status.toUpperCase();
    lines.push(`  ${s.name}: ${label}  ${s.message}`);
  }

  if (composition.status === 'passed') {
    lines.push('composition: ok');
  } else {
    lines.push(`composition: FAILED (${plural(composition.errors.length, 'error')})`);
    lines.push(...formatCompositionErrors(composition.errors, report.schemaDir));
  }

  lines.push(`supergraph: ${verdict(supergraph.status)} (${supergraph.message})`);

  const base = changes.base ? describeBase(changes.base) : null;
  if (changes.status === 'skipped' || changes.note) {
    lines.push(`changes: ${verdict(changes.status)} (${changes.note})`);
  } else {
    const breaking = changes.changes.filter((c) => c.criticality === 'BREAKING');
    const unapproved = breaking.filter((c) => !c.approved);
    const summary = changes.changes.length === 0
      ? 'no changes'
      : `${plural(changes.changes.length, 'change')}, ${breaking.length} breaking${breaking.length ? ` (${unapproved.length} not approved)` : ''}`;
    lines.push(`changes against ${base}: ${changes.status === 'failed' ? 'FAILED, ' : ''}${summary}`);
    for (const [label, group] of groupBy(changes.changes, (c) => subgraphLabel(c.subgraphs))) {
      lines.push(`  ${label}`);
      for (const c of group) {
        // Reasons may be multi-line YAML; the report keeps one line a change.
        const approval = c.criticality !== 'BREAKING'
          ? ''
          : c.approved
            ? `  [approved: ${c.reason.replace(/\s+/g, ' ')}]`
            : '  [NOT APPROVED]';
        lines.push(`    ${c.criticality.padEnd(9)}  ${c.type}  ${c.path ?? '(schema)'}  ${c.message}${approval}`);
      }
    }
    if (unapproved.length > 0) {
      lines.push('');
      lines.push('To ship these breaking changes, add each to approved-changes.yaml with the reason clients may break:');
      lines.push('approved:');
      for (const c of unapproved) {
        if (c.path !== null) lines.push(`  - path: ${c.path}`);
        lines.push(`${c.path !== null ? '    ' : '  - '}type: ${c.type}`);
        lines.push('    reason: "<why this is acceptable>"');
      }
    }
    for (const a of changes.unusedApprovals) {
      lines.push(`note: approved-changes.yaml:${a.line} (${a.type} ${a.path ?? '(schema)'}) matches no breaking change; remove it once merged`);
    }
  }
  lines.push('');
  lines.push(report.ok ? 'schema check passed' : `schema check FAILED: ${report.failedSteps.join(', ')}`);
  return lines.join('\n');
}

/** An unexpected exception: a bug or a broken install, not a verdict on the schema. */
function crashed(err) {
  console.error(err);
  return EXIT.INTERNAL;
}

async function main(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'schema-dir': { type: 'string' },
        exported: { type: 'string' },
        base: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    // --json may not have been parsed; a bad command line is answered in text.
    console.log(`error: ${err.message}\n${USAGE}`);
    return EXIT.USAGE;
  }
  try {
    const report = await run(values);
    console.log(values.json ? JSON.stringify(report, null, 2) : render(report));
    return report.ok ? EXIT.OK : EXIT.FAILED;
  } catch (err) {
    if (!(err instanceof UsageError)) return crashed(err);
    console.log(values.json ? JSON.stringify({ ok: false, error: { kind: err.kind, message: err.message } }, null, 2) : `error: ${err.message}`);
    return EXIT.USAGE;
  }
}

process.exitCode = await main(process.argv.slice(2));
