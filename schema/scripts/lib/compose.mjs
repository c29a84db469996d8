// Composes the subgraph SDL files into a supergraph and turns composition errors into readable ones.

import fs from 'node:fs';
import path from 'node:path';
import { composeServices } from '@theguild/federation-composition';
import { getLocation, GraphQLError, Kind, parse, Source } from 'graphql';

/**
 * @typedef {{ subgraph: string, file: string, line: number, column: number }} Location
 * @typedef {{ code: string, message: string, subgraphs: string[], locations: Location[] }} CompositionError
 * @typedef {{
 *   supergraphSdl: string | null,
 *   errors: CompositionError[],
 *   composed: string[],
 *   missing: string[],
 * }} CompositionOutcome
 *   `composed`: subgraphs whose SDL file exists and took part; `missing`: listed subgraphs with no SDL file
 *   yet (they are skipped, so subgraphs can be listed before their code lands).
 */

/**
 * Composes every subgraph in `subgraphs` whose SDL file exists. Never throws for a bad schema: syntax and
 * composition problems come back in `errors`, each tied to subgraphs and file locations where they can be.
 *
 * @param {import('./config.mjs').Subgraph[]} subgraphs
 * @returns {CompositionOutcome}
 */
export function composeSubgraphs(subgraphs) {
  const present = subgraphs.filter((s) => fs.existsSync(s.sdlPath));
  const missing = subgraphs.filter((s) => !fs.existsSync(s.sdlPath)).map((s) => s.name);
  const composed = present.map((s) => s.name);
  if (present.length === 0) {
    return {
      supergraphSdl: null,
      composed,
      missing,
      errors: [
        {
          code: 'NO_SUBGRAPHS',
          message: 'none of the subgraphs listed in subgraphs.json has an SDL file yet: nothing to compose',
          subgraphs: [],
          locations: [],
        },
      ],
    };
  }

  // Parse ourselves, with the file name as the source name, so syntax errors carry a file and position.
  const parsed = [];
  const errors = [];
  for (const subgraph of present) {
    const text = fs.readFileSync(subgraph.sdlPath, 'utf8');
    try {
      parsed.push({ subgraph, document: parse(new Source(text, subgraph.sdl)) });
    } catch (err) {
      if (!(err instanceof GraphQLError)) throw err;
      errors.push({
        code: 'INVALID_GRAPHQL',
        message: `[${subgraph.name}] ${err.message}`,
        subgraphs: [subgraph.name],
        locations: (err.locations ?? []).map((l) => ({ subgraph: subgraph.name, file: subgraph.sdl, ...l })),
      });
    }
  }
  // Composing without a subgraph that failed to parse would only add confusing follow-up errors.
  if (errors.length > 0) return { supergraphSdl: null, composed, missing, errors };

  const result = composeServices(
    parsed.map(({ subgraph, document }) => ({ name: subgraph.name, url: subgraph.url, typeDefs: document })),
  );
  if (result.errors && result.errors.length > 0) {
    return { supergraphSdl: null, composed, missing, errors: result.errors.map((e) => describeError(e, parsed)) };
  }
  const sdl = result.supergraphSdl.endsWith('\n') ? result.supergraphSdl : `${result.supergraphSdl}\n`;
  return { supergraphSdl: sdl, composed, missing, errors: [] };
}

/**
 * Ties a composition error to subgraphs and source locations. Validation errors of a single subgraph carry
 * both (`extensions.subgraphName` and `locations`); cross-subgraph errors (field sharing, type mismatches)
 * carry neither, only a message naming subgraphs and schema coordinates in quotes, so those are resolved
 * against the parsed SDL.
 */
function describeError(error, parsed) {
  const code = String(error.extensions?.code ?? 'COMPOSITION_ERROR');
  const byName = new Map(parsed.map((p) => [p.subgraph.name, p]));
  const named = error.extensions?.subgraphName;
  if (typeof named === 'string' && byName.has(named) && error.locations?.length) {
    const { subgraph } = byName.get(named);
    return {
      code,
      message: error.message,
      subgraphs: [named],
      locations: error.locations.map((l) => ({ subgraph: named, file: subgraph.sdl, line: l.line, column: l.column })),
    };
  }

  const quoted = [...error.message.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  const bracketed = [...error.message.matchAll(/\[([a-z][a-z0-9_-]*)\]/g)].map((m) => m[1]);
  const mentioned = [...new Set([...(typeof named === 'string' ? [named] : []), ...bracketed, ...quoted])].filter(
    (name) => byName.has(name),
  );
  const coordinates = quoted.filter((q) => COORDINATE_RE.test(q));
  const candidates = mentioned.length > 0 ? mentioned.map((n) => byName.get(n)) : parsed;
  const locations = [];
  for (const { subgraph, document } of candidates) {
    for (const coordinate of coordinates) {
      const loc = locate(document, coordinate);
      if (loc) {
        locations.push({ subgraph: subgraph.name, file: subgraph.sdl, ...loc });
        break;
      }
    }
  }
  const subgraphs = mentioned.length > 0 ? mentioned : [...new Set(locations.map((l) => l.subgraph))];
  return { code, message: error.message, subgraphs: subgraphs.sort(), locations };
}

// `Type`, `Type.field`, `Type.field(arg:)`, `@directive`: the schema coordinates composition messages quote.
const COORDINATE_RE = /^@?[_A-Za-z][_0-9A-Za-z]*(\.[_A-Za-z][_0-9A-Za-z]*(\([_A-Za-z][_0-9A-Za-z]*:\))?)?$/;

/** Where `coordinate` is defined in `document`, as `{ line, column }`, or null. */
function locate(document, coordinate) {
  const at = (node) => getLocation(node.loc.source, node.loc.start);
  if (coordinate.startsWith('@')) {
    const name = coordinate.slice(1);
    const def = document.definitions.find((d) => d.kind === Kind.DIRECTIVE_DEFINITION && d.name.value === name);
    return def ? at(def) : null;
  }
  const [, typeName, fieldName, argName] = coordinate.match(/^([^.]+)(?:\.([^(]+)(?:\(([^:]+):\))?)?$/);
  const types = document.definitions.filter((d) => d.name?.value === typeName && d.kind !== Kind.DIRECTIVE_DEFINITION);
  if (types.length === 0) return null;
  if (!fieldName) return at(types[0]);
  for (const type of types) {
    const members = [...(type.fields ?? []), ...(type.values ?? [])];
    const member = members.find((m) => m.name.value === fieldName);
    if (!member) continue;
    if (!argName) return at(member);
    const arg = member.arguments?.find((a) => a.name.value === argName);
    return at(arg ?? member);
  }
  return null;
}

/** `schema/user.graphql:5:3`-style text for a location, relative to the working directory when possible. */
export function formatLocation(location, schemaDir) {
  return `${displayPath(path.join(schemaDir, location.file))}:${location.line}:${location.column}`;
}

/** A path as a person wants to read it: relative when under the working directory, else absolute. */
export function displayPath(file) {
  const absolute = path.resolve(file);
  const relative = path.relative(process.cwd(), absolute);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : absolute;
}
