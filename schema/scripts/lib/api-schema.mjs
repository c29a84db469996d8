// The API schema of a supergraph (what clients see) and which subgraphs own each of its coordinates.

import { transformSupergraphToPublicSchema } from '@theguild/federation-composition';
import { buildASTSchema, Kind, parse } from 'graphql';

/**
 * Builds the API schema: the supergraph minus federation internals (join__/link__ types and directives,
 * spec directives) and minus every @inaccessible element. Uses the composition library's own transform so
 * the check and the composer agree on what clients see.
 *
 * @param {string} supergraphSdl
 * @returns {import('graphql').GraphQLSchema}
 */
export function apiSchema(supergraphSdl) {
  return buildASTSchema(transformSupergraphToPublicSchema(parse(supergraphSdl)));
}

/**
 * Maps schema coordinates (`Type`, `Type.field`, `Enum.VALUE`) to the names of the subgraphs that define
 * them, read from the supergraph's join__ directives. Fields marked `external` in a subgraph are not owned
 * by it (another subgraph resolves them).
 *
 * @param {string} supergraphSdl
 * @returns {Map<string, string[]>}
 */
export function ownership(supergraphSdl) {
  const document = parse(supergraphSdl);
  const graphNames = new Map();
  for (const def of document.definitions) {
    if (def.kind !== Kind.ENUM_TYPE_DEFINITION || def.name.value !== 'join__Graph') continue;
    for (const value of def.values ?? []) {
      const directive = value.directives?.find((d) => d.name.value === 'join__graph');
      const name = argument(directive, 'name');
      graphNames.set(value.name.value, typeof name === 'string' ? name : value.name.value.toLowerCase());
    }
  }
  const graphsOf = (node, directiveName) => {
    const owners = [];
    for (const d of node.directives ?? []) {
      if (d.name.value !== directiveName || argument(d, 'external') === true) continue;
      const graph = argument(d, 'graph');
      if (typeof graph === 'string' && graphNames.has(graph)) owners.push(graphNames.get(graph));
    }
    return [...new Set(owners)].sort();
  };

  const owners = new Map();
  for (const def of document.definitions) {
    if (!def.name || def.kind === Kind.DIRECTIVE_DEFINITION) continue;
    const typeOwners = graphsOf(def, 'join__type');
    if (typeOwners.length === 0) continue;
    owners.set(def.name.value, typeOwners);
    for (const field of def.fields ?? []) {
      const fieldOwners = graphsOf(field, 'join__field');
      // Without @join__field a field is defined in every subgraph that defines its type.
      const hasJoinField = field.directives?.some((d) => d.name.value === 'join__field');
      owners.set(`${def.name.value}.${field.name.value}`, hasJoinField ? fieldOwners : typeOwners);
    }
    for (const value of def.values ?? []) {
      const valueOwners = graphsOf(value, 'join__enumValue');
      owners.set(`${def.name.value}.${value.name.value}`, valueOwners.length > 0 ? valueOwners : typeOwners);
    }
  }
  return owners;
}

/** The subgraphs owning `path` (or its closest owned parent, e.g. a field for an argument), or []. */
export function ownersOf(path, ...maps) {
  if (!path) return [];
  const segments = path.split('.');
  for (let n = segments.length; n > 0; n -= 1) {
    const coordinate = segments.slice(0, n).join('.');
    for (const map of maps) {
      const found = map.get(coordinate);
      if (found && found.length > 0) return found;
    }
  }
  return [];
}

function argument(directive, name) {
  const arg = directive?.arguments?.find((a) => a.name.value === name);
  if (!arg) return undefined;
  if (arg.value.kind === Kind.ENUM || arg.value.kind === Kind.STRING) return arg.value.value;
  if (arg.value.kind === Kind.BOOLEAN) return arg.value.value;
  return undefined;
}
