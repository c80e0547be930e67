// Test fixtures: a demo PKI written by the Rust CLI (`host-cli pki demo`),
// the same generator the Rust tests use, so no certificate is committed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('..', import.meta.url));

export function hostCli() {
  const fromEnv = process.env.ATTEST_HOST_CLI;
  if (fromEnv) return resolve(process.env.INIT_CWD ?? process.cwd(), fromEnv);
  for (const profile of ['debug', 'release']) {
    const p = join(here, '..', 'target', profile, 'host-cli');
    if (existsSync(p)) return p;
  }
  throw new Error('host-cli not found: run `cargo build` or set ATTEST_HOST_CLI');
}

let demo;
/** The canonical demo PKI (root → A → devices 1–3, root → B → 4–5), once per process. */
export function demoPki() {
  if (!demo) {
    const dir = mkdtempSync(join(tmpdir(), 'attest-js-'));
    execFileSync(hostCli(), ['pki', 'demo', dir], { stdio: 'ignore' });
    demo = { dir, file: (name) => join(dir, name), text: (name) => readFileSync(join(dir, name), 'utf8') };
  }
  return demo;
}
