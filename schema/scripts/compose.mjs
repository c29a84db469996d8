// `npm run compose`: writes supergraph.graphql from the subgraph SDL files listed in subgraphs.json.
//
// Usage: node scripts/compose.mjs [--schema-dir DIR] [--out FILE]
// Exit codes: 0 written, 1 composition errors (nothing written), 2 bad arguments or subgraphs.json,
// 3 internal error.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { composeSubgraphs, displayPath } from './lib/compose.mjs';
import { loadSubgraphs } from './lib/config.mjs';
import { EXIT, UsageError } from './lib/errors.mjs';
import { formatCompositionErrors, plural } from './lib/format.mjs';

function main(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { 'schema-dir': { type: 'string' }, out: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError('BAD_ARGUMENTS', `${err.message}\nusage: compose.mjs [--schema-dir DIR] [--out FILE]`);
  }
  // By default the schema directory is the one this script lives in (schema/scripts/..).
  const schemaDir = path.resolve(values['schema-dir'] ?? fileURLToPath(new URL('..', import.meta.url)));
  const out = path.resolve(values.out ?? path.join(schemaDir, 'supergraph.graphql'));
  const subgraphs = loadSubgraphs(schemaDir);
  const outcome = composeSubgraphs(subgraphs);

  if (outcome.errors.length > 0) {
    console.log(`composition failed: ${plural(outcome.errors.length, 'error')}; ${displayPath(out)} left unchanged`);
    for (const line of formatCompositionErrors(outcome.errors, schemaDir)) console.log(line);
    return EXIT.FAILED;
  }
  fs.writeFileSync(out, outcome.supergraphSdl);
  console.log(`composed ${outcome.composed.join(', ')} -> ${displayPath(out)}`);
  if (outcome.missing.length > 0) {
    console.log(`not composed (no SDL file yet): ${outcome.missing.join(', ')}`);
  }
  return EXIT.OK;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    console.log(`error: ${err.message}`);
    process.exitCode = EXIT.USAGE;
  } else {
    // A bug or a broken install, not a verdict on the schema: keep it apart from exit code 1.
    console.error(err);
    process.exitCode = EXIT.INTERNAL;
  }
}
