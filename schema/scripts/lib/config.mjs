// Loads `subgraphs.json`, the list of subgraphs that make up the supergraph.

import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './errors.mjs';

const SUBGRAPH_KEYS = new Set(['name', 'sdl', 'url']);
// Subgraph names become `join__Graph` enum values in the supergraph, so keep them to a safe alphabet.
const NAME_RE = /^[a-z][a-z0-9_-]*$/;

/**
 * @typedef {{ name: string, sdl: string, sdlPath: string, url: string }} Subgraph
 *   `sdl` is the file as written in subgraphs.json (relative to the schema directory), `sdlPath` its
 *   absolute path.
 */

/**
 * Reads and validates `<schemaDir>/subgraphs.json`:
 * `{ "subgraphs": [{ "name": "user", "sdl": "user.graphql", "url": "http://127.0.0.1:4001/graphql" }] }`.
 * Unknown keys are rejected so a typo cannot silently drop a subgraph from composition.
 *
 * @param {string} schemaDir
 * @returns {Subgraph[]}
 */
export function loadSubgraphs(schemaDir) {
  const file = path.join(schemaDir, 'subgraphs.json');
  let raw;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError('SUBGRAPHS_INVALID', `cannot read ${file}: ${err.message}`);
  }
  let doc;
  try {
    doc = JSON.parse(raw);
  } catch (err) {
    throw new UsageError('SUBGRAPHS_INVALID', `${file} is not valid JSON: ${err.message}`);
  }
  const fail = (msg) => {
    throw new UsageError('SUBGRAPHS_INVALID', `${file}: ${msg}`);
  };
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) fail('expected an object with a "subgraphs" list');
  for (const key of Object.keys(doc)) if (key !== 'subgraphs') fail(`unknown key "${key}" (allowed: subgraphs)`);
  if (!Array.isArray(doc.subgraphs)) fail('"subgraphs" must be a list');

  const seenNames = new Set();
  const seenFiles = new Set();
  return doc.subgraphs.map((entry, i) => {
    const where = `subgraphs[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(`${where} must be an object`);
    for (const key of Object.keys(entry)) {
      if (!SUBGRAPH_KEYS.has(key)) fail(`${where}: unknown key "${key}" (allowed: ${[...SUBGRAPH_KEYS].join(', ')})`);
    }
    for (const key of SUBGRAPH_KEYS) {
      if (typeof entry[key] !== 'string' || entry[key].trim() === '') fail(`${where}: "${key}" must be a non-empty string`);
    }
    if (!NAME_RE.test(entry.name)) fail(`${where}: name "${entry.name}" must match ${NAME_RE}`);
    if (seenNames.has(entry.name)) fail(`${where}: duplicate subgraph name "${entry.name}"`);
    seenNames.add(entry.name);
    const normalized = path.normalize(entry.sdl);
    if (path.isAbsolute(normalized) || normalized.startsWith('..')) {
      fail(`${where}: sdl "${entry.sdl}" must be a path inside the schema directory`);
    }
    if (seenFiles.has(normalized)) fail(`${where}: sdl file "${entry.sdl}" is used by two subgraphs`);
    seenFiles.add(normalized);
    try {
      new URL(entry.url);
    } catch {
      fail(`${where}: url "${entry.url}" is not a valid URL`);
    }
    return { name: entry.name, sdl: normalized, sdlPath: path.join(schemaDir, normalized), url: entry.url };
  });
}
