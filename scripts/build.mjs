#!/usr/bin/env node
// Build: generate the protobuf code (when a .proto changed), compile TypeScript, copy generated JS into dist.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (cmd, args) => {
  try {
    execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
  } catch {
    console.error(`build: ${cmd.split('/').pop()} failed`);
    process.exit(1);
  }
};

function listFiles(dir, suffix) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p, suffix));
    else if (entry.name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}

const protoDir = join(root, 'proto');
const genDir = join(root, 'lib', 'proto', 'generated');
const genJs = join(genDir, 'proto.js');
const genDts = join(genDir, 'proto.d.ts');
const protos = listFiles(protoDir, '.proto');
const newestProto = Math.max(...protos.map((p) => statSync(p).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (!existsSync(genJs) || !existsSync(genDts) || statSync(genJs).mtimeMs < newestProto) {
  mkdirSync(genDir, { recursive: true });
  console.log(`build: generating protobuf code from ${protos.length} .proto files`);
  run(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '--no-beautify', '--no-delimited', '-p', protoDir, '-o', genJs, ...protos]);
  run(bin('pbts'), ['--no-comments', '-o', genDts, genJs]);
}

console.log('build: tsc');
run(bin('tsc'), ['-p', '.']);

const distGen = join(root, 'dist', 'lib', 'proto', 'generated');
mkdirSync(distGen, { recursive: true });
copyFileSync(genJs, join(distGen, 'proto.js'));
copyFileSync(genDts, join(distGen, 'proto.d.ts'));

// Programs named in package.json "bin" must be executable.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const target of Object.values(pkg.bin ?? {})) {
  const p = join(root, target);
  if (existsSync(p)) chmodSync(p, 0o755);
}
console.log('build: done');
