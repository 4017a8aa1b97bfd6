#!/usr/bin/env node
// Builds, then runs the test tiers (README "Tests"). `node scripts/run-tests.mjs [tier ...]`; no tier = all tiers.
// Tiers that need root or external programs fail loudly when those are missing; none is skipped quietly.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** tier -> [directory under dist/test, may run files in parallel, needs root] */
const TIERS = {
  unit: ['unit', true, false],
  inprocess: ['inprocess', true, false],
  fakenode: ['fakenode', false, true],
  hostile: ['hostile', false, true],
  kube: ['kube', false, true],
};

function listTests(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTests(p));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const requested = process.argv.slice(2);
for (const t of requested) {
  if (!(t in TIERS)) {
    console.error(`run-tests: unknown tier "${t}"; tiers: ${Object.keys(TIERS).join(', ')}`);
    process.exit(2);
  }
}
const tiers = requested.length > 0 ? requested : Object.keys(TIERS);
// Always build first: a test run against a stale dist/ tests code that is not in the tree.
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error('run-tests: the build failed; no tests were run');
  process.exit(1);
}

let failed = false;
for (const tier of tiers) {
  const [dir, parallel, needsRoot] = TIERS[tier];
  const files = listTests(join(root, 'dist', 'test', dir));
  if (files.length === 0) continue;
  if (needsRoot && process.getuid?.() !== 0) {
    console.error(`run-tests: tier "${tier}" creates network namespaces and must run as root (it is not skipped). Run: sudo npm test`);
    failed = true;
    continue;
  }
  console.log(`\n=== tier ${tier}: ${files.length} files`);
  const args = ['--test', '--test-reporter=spec', `--test-concurrency=${parallel ? 2 : 1}`, ...files];
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, MESH_TEST_TIER: tier } });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
