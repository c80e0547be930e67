#!/usr/bin/env node
// attest's command line in Node.js: `attest verify CHAIN.pem [...]`, with
// host-cli verify's flags, exit codes and --json document.
import { run } from '../src/cli.js';

let out;
try {
  out = run(process.argv.slice(2));
} catch (e) {
  out = { code: 2, stdout: '', stderr: `error: internal error: ${e?.message ?? e}\n` };
}
process.stdout.write(out.stdout);
process.stderr.write(out.stderr);
process.exitCode = out.code;
