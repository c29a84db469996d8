// Loads approved-changes.yaml: the breaking changes a team has decided to ship, each with its reason.
//
// Format (unknown keys anywhere are an error, so a typo cannot approve more than was meant):
//
//   approved:
//     - path: User.email          # the change's schema coordinate, exactly as the check prints it
//       type: FIELD_REMOVED       # the change kind (a graphql-inspector ChangeType), as printed
//       reason: "email moved to User.contact; all clients migrated in #42"
//
// `path` may be left out only for changes that have no coordinate (the check prints `(schema)` for those).
// An entry approves every breaking change with that exact type and path.

import fs from 'node:fs';
import { ChangeType } from '@graphql-inspector/core';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { UsageError } from './errors.mjs';

const ENTRY_KEYS = ['path', 'type', 'reason'];
const CHANGE_TYPES = new Set(Object.values(ChangeType));

/**
 * @typedef {{ path: string | null, type: string, reason: string, line: number }} Approval
 */

/**
 * Reads and validates the approvals file. A missing file means no approvals.
 *
 * @param {string} file
 * @returns {Approval[]}
 */
export function loadApprovals(file) {
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8');
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
  const fail = (node, message) => {
    const line = node?.range ? lineCounter.linePos(node.range[0]).line : null;
    throw new UsageError('APPROVALS_INVALID', `${file}${line ? `:${line}` : ''}: ${message}`);
  };
  if (doc.errors.length > 0) fail(null, `not valid YAML: ${doc.errors[0].message}`);

  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return [];
  if (!isMap(root)) fail(root, 'expected a mapping with an "approved" list');
  let list = null;
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? pair.key.value : pair.key;
    if (key !== 'approved') fail(pair.key, `unknown key "${key}" (allowed: approved)`);
    list = pair.value;
  }
  if (list === null || (isScalar(list) && list.value === null)) return [];
  if (!isSeq(list)) fail(list, '"approved" must be a list of {path, type, reason} entries');

  const seen = new Set();
  return list.items.map((item, i) => {
    const where = `approved[${i}]`;
    if (!isMap(item)) fail(item, `${where} must be a mapping with path, type and reason`);
    const entry = {};
    for (const pair of item.items) {
      const key = isScalar(pair.key) ? pair.key.value : String(pair.key);
      if (!ENTRY_KEYS.includes(key)) fail(pair.key, `${where}: unknown key "${key}" (allowed: ${ENTRY_KEYS.join(', ')})`);
      if (!isScalar(pair.value) || typeof pair.value.value !== 'string') {
        fail(pair.value ?? pair.key, `${where}: "${key}" must be a string`);
      }
      entry[key] = pair.value.value;
    }
    if (entry.type === undefined) fail(item, `${where}: "type" is required (the change kind the check prints, e.g. FIELD_REMOVED)`);
    if (!CHANGE_TYPES.has(entry.type)) fail(item, `${where}: unknown change type "${entry.type}"`);
    if (entry.reason === undefined || entry.reason.trim() === '') {
      fail(item, `${where}: approval of ${entry.type} ${entry.path ?? '(schema)'} has no reason; say why breaking clients is acceptable`);
    }
    if (entry.path !== undefined && entry.path.trim() === '') fail(item, `${where}: "path" must not be empty (leave it out for changes without a coordinate)`);
    const approval = {
      path: entry.path ?? null,
      type: entry.type,
      reason: entry.reason.trim(),
      line: lineCounter.linePos(item.range[0]).line,
    };
    const id = `${approval.type} ${approval.path}`;
    if (seen.has(id)) fail(item, `${where}: ${approval.type} ${approval.path ?? '(schema)'} is approved twice`);
    seen.add(id);
    return approval;
  });
}
