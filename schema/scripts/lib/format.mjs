// Text helpers shared by the human output of compose.mjs and check.mjs.

import { formatLocation } from './compose.mjs';

/** Groups items by the label `keyOf` gives, preserving first-seen order of labels and items. */
export function groupBy(items, keyOf) {
  const groups = new Map();
  for (const item of items) {
    const key = keyOf(item);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(item);
  }
  return groups;
}

/** The group label of something owned by `subgraphs`: their names, or "supergraph" when none applies. */
export function subgraphLabel(subgraphs) {
  return subgraphs.length > 0 ? subgraphs.join(', ') : 'supergraph';
}

/** Composition errors, grouped by subgraph, one line each: `CODE  message (file:line:col, ...)`. */
export function formatCompositionErrors(errors, schemaDir, indent = '  ') {
  const lines = [];
  for (const [label, group] of groupBy(errors, (e) => subgraphLabel(e.subgraphs))) {
    lines.push(`${indent}${label}`);
    for (const error of group) {
      const where = error.locations.length
        ? ` (${error.locations.map((l) => formatLocation(l, schemaDir)).join(', ')})`
        : '';
      lines.push(`${indent}  ${error.code}  ${error.message}${where}`);
    }
  }
  return lines;
}

/** `1 error`, `2 errors`. */
export function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
