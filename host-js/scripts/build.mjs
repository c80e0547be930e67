// Builds the Node.js host: takes the policy component from
// `host-cli component --out` (the exact bytes policy-host embeds) and
// transpiles it with jco into dist/. The component's SHA-256 goes into
// dist/component.json, so a test can check that dist/ holds the bytes the
// Rust hosts run.
//
// Which host-cli: $ATTEST_HOST_CLI if set, else `cargo run -p host-cli`
// from the repository root (a no-op rebuild after `cargo build`).
// $ATTEST_COMPONENT instead names a .wasm to transpile as it is.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const root = resolve(here, '..');
const dist = join(here, 'dist');
const wasm = join(dist, 'attest-policy.wasm');
// Paths in the environment are relative to where npm was started.
const fromCaller = (p) => (p.includes('/') ? resolve(process.env.INIT_CWD ?? process.cwd(), p) : p);

function run(cmd, args, options = {}) {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...options });
  } catch (e) {
    const why = e.code === 'ENOENT' ? `${cmd} is not installed or not on PATH` : `exit status ${e.status}`;
    console.error(`build: ${cmd} ${args.join(' ')} failed: ${why}`);
    process.exit(1);
  }
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

if (process.env.ATTEST_COMPONENT) {
  writeFileSync(wasm, readFileSync(fromCaller(process.env.ATTEST_COMPONENT)));
} else if (process.env.ATTEST_HOST_CLI) {
  run(fromCaller(process.env.ATTEST_HOST_CLI), ['component', '--out', wasm]);
} else {
  run('cargo', ['run', '--quiet', '-p', 'host-cli', '--', 'component', '--out', wasm], { cwd: root });
}

const bytes = readFileSync(wasm);
const sha256 = createHash('sha256').update(bytes).digest('hex');

// --instantiation sync: the host hands the imports in at instantiation
// (each Policy gets its own instance); no WASI shim, since the component
// imports no WASI at all.
const jco = join(here, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js');
run(process.execPath, [
  jco, 'transpile', wasm,
  '--name', 'policy',
  '--instantiation', 'sync',
  '--no-nodejs-compat',
  '--strict',
  '--out-dir', join(dist, 'policy'),
  '--quiet',
]);

writeFileSync(join(dist, 'component.json'), JSON.stringify({ sha256, bytes: bytes.length }, null, 2) + '\n');
console.log(`${sha256}  dist/attest-policy.wasm (${bytes.length} bytes), transpiled into dist/policy/`);
