/**
 * The local-config file both ztunnels of the fake-node mesh read (LOCAL_XDS_PATH) turned hostile: garbage, the
 * wrong schema, one bad entry among good ones, a YAML nesting bomb, an alias bomb, a FIFO and nothing at all at
 * the path. Each ztunnel must refuse the new content with a stable code, keep serving its last good state (same
 * workloads, traffic still flowing), and take the next good file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { assertServes, startHostileMesh, type HostileMesh } from './mesh-fixture.js';

let h: HostileMesh;
let good: string;

before(async () => {
  h = await startHostileMesh('hconfig');
  good = await readFile(h.mesh.configPath, 'utf8');
});

after(async () => {
  if (h) await h.mesh.destroy();
});

const failures = (node: typeof h.node1): number =>
  (h.mesh.ztunnelProcess(node).stdout.match(/local config reload failed; keeping the last good config/g) ?? []).length;

async function workloadUids(node: typeof h.node1): Promise<string[]> {
  return (await h.mesh.configDump(node)).workloads.map((w) => w.uid).sort();
}

/** Puts `content` at the config path the way a careful writer does (write, then rename). */
async function replaceConfig(content: string | Buffer): Promise<void> {
  const tmp = join(dirname(h.mesh.configPath), 'hostile.tmp');
  await writeFile(tmp, content);
  await rename(tmp, h.mesh.configPath);
}

async function waitForRefusal(before: readonly number[], code: RegExp): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (const [i, node] of [h.node1, h.node2].entries()) {
    while (failures(node) <= (before[i] ?? 0)) {
      if (Date.now() > deadline) throw new Error(`ztunnel on ${node.name} did not refuse the new file`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(h.mesh.ztunnelProcess(node).stdout, code);
  }
}

const CASES: readonly [string, () => Promise<void>, RegExp][] = [
  [
    'binary garbage',
    () => replaceConfig(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) % 256))),
    /CONFIG_INVALID_LOCAL_CONFIG/,
  ],
  ['the wrong schema', () => replaceConfig('workloads: 7\nservices: {a: b}\n'), /CONFIG_INVALID_LOCAL_CONFIG/],
  [
    'one bad address among good entries',
    () => replaceConfig(good.replace(/workloadIps:\n(\s+)- (\S+)/, 'workloadIps:\n$1- 10.1.2.300')),
    /CONFIG_INVALID_LOCAL_CONFIG/,
  ],
  ['a nesting bomb', () => replaceConfig(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), /CONFIG_INVALID_LOCAL_CONFIG/],
  [
    'an alias bomb',
    () =>
      replaceConfig(
        `a: &a ["x","x","x","x","x","x","x","x","x","x"]\n${Array.from(
          { length: 8 },
          (_, i) =>
            `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
              .fill(`*${String.fromCharCode(97 + i)}`)
              .join(',')}]`,
        ).join('\n')}\n`,
      ),
    /CONFIG_INVALID_LOCAL_CONFIG/,
  ],
  [
    'a FIFO at the path',
    async () => {
      const fifo = join(dirname(h.mesh.configPath), 'hostile.fifo');
      execFileSync('mkfifo', [fifo]);
      await rename(fifo, h.mesh.configPath);
    },
    /not a regular file/,
  ],
  ['no file at all', () => rm(h.mesh.configPath, { force: true }), /CONFIG_LOCAL_CONFIG_UNREADABLE/],
];

describe('ztunnel with a hostile local-config file', () => {
  for (const [what, act, code] of CASES) {
    test(`refuses ${what}, keeps its last good state and keeps serving`, async () => {
      const uids = [await workloadUids(h.node1), await workloadUids(h.node2)];
      const before = [failures(h.node1), failures(h.node2)];
      await act();
      await waitForRefusal(before, code);
      assert.deepEqual([await workloadUids(h.node1), await workloadUids(h.node2)], uids, 'the last good state is kept');
      await assertServes(h, what);
      // The next good file is taken (apply() rewrites it and waits until both ztunnels serve it).
      await h.mesh.apply();
    });
  }
});
