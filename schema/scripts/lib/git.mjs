// Finds the base commit the schema is compared against and reads files as they were there.

import { execFileSync } from 'node:child_process';
import { UsageError } from './errors.mjs';

/**
 * @typedef {{ ref: string, commit: string, how: 'explicit' | 'merge-base' | 'previous-commit' }} Base
 * @typedef {{ base: Base | null, note: string | null }} BaseResolution
 *   `note` says why there is no base (not a repository, no history) when `base` is null.
 */

class GitMissing extends Error {}

/** Runs git in `cwd`; returns trimmed stdout, or null when git exits non-zero. */
function git(cwd, args) {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    if (err.code === 'ENOENT') throw new GitMissing('git is not installed');
    return null;
  }
}

function commitOf(cwd, ref) {
  return git(cwd, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`]);
}

/**
 * The commit to diff against. An explicit `ref` must exist (a typo must not silently skip the check);
 * by default it is the merge base of HEAD with `main` (or `origin/main`, as CI checkouts often have only
 * that), else HEAD's parent, else there is none and the note says why.
 *
 * @param {string} cwd a directory inside the repository (the schema directory)
 * @param {string | undefined} ref
 * @returns {BaseResolution}
 */
export function resolveBase(cwd, ref) {
  try {
    return resolveWithGit(cwd, ref);
  } catch (err) {
    if (!(err instanceof GitMissing)) throw err;
    if (ref !== undefined) throw new UsageError('GIT_MISSING', `--base ${ref}: git is not installed`);
    return { base: null, note: 'git is not installed' };
  }
}

function resolveWithGit(cwd, ref) {
  const inRepo = git(cwd, ['rev-parse', '--is-inside-work-tree']) === 'true';
  if (ref !== undefined) {
    if (!inRepo) throw new UsageError('BASE_UNKNOWN', `--base ${ref}: ${cwd} is not inside a git repository`);
    const commit = commitOf(cwd, ref);
    if (!commit) throw new UsageError('BASE_UNKNOWN', `--base ${ref}: no such commit, branch or tag`);
    return { base: { ref, commit, how: 'explicit' }, note: null };
  }
  if (!inRepo) return { base: null, note: 'not inside a git repository' };
  if (!commitOf(cwd, 'HEAD')) return { base: null, note: 'the repository has no commits yet' };
  for (const main of ['main', 'origin/main']) {
    if (!commitOf(cwd, main)) continue;
    const commit = git(cwd, ['merge-base', 'HEAD', main]);
    if (commit) return { base: { ref: main, commit, how: 'merge-base' }, note: null };
  }
  const parent = commitOf(cwd, 'HEAD~1');
  if (parent) return { base: { ref: 'HEAD~1', commit: parent, how: 'previous-commit' }, note: null };
  return { base: null, note: 'no main branch and HEAD has no parent commit' };
}

/**
 * The content of `file` (relative to `cwd`) at `commit`, or null when it did not exist there.
 *
 * @param {string} cwd
 * @param {string} commit
 * @param {string} file
 */
export function readAtCommit(cwd, commit, file) {
  const spec = `${commit}:./${file}`;
  if (git(cwd, ['cat-file', '-e', spec]) === null) return null;
  try {
    return execFileSync('git', ['show', spec], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    throw new UsageError('BASE_UNREADABLE', `cannot read ${file} at ${commit}: ${err.message}`);
  }
}
