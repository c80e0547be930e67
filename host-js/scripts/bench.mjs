// host-js's side of `cargo run --release -p attest-tests --example
// hosts-bench`: full attestations per second on the inputs that example
// writes. Prints a JSON list of decisions/s, one per input.
import { readFileSync } from 'node:fs';

import { EnrollmentSet, Policy } from '../src/index.js';

const [file, seconds = '2'] = process.argv.slice(2);
const inputs = JSON.parse(readFileSync(file, 'utf8'));
const b = (s) => new Uint8Array(Buffer.from(s, 'base64'));
const policy = new Policy();
const rates = inputs.map((input) => {
  const set = EnrollmentSet.fromJson(input.enrollments, policy);
  const request = { registrationId: 'bench-device', leaf: b(input.leaf), intermediates: input.intermediates.map(b), time: BigInt(input.time) };
  const proof = { challenge: b(input.challenge), signature: b(input.signature) };
  if (policy.attest(request, proof, set).verdict !== 'accepted') throw new Error(`${input.name} is not accepted`);
  const deadline = performance.now() + Number(seconds) * 1000;
  const started = performance.now();
  let n = 0;
  while (performance.now() < deadline) {
    policy.attest(request, proof, set);
    n++;
  }
  return n / ((performance.now() - started) / 1000);
});
process.stdout.write(JSON.stringify(rates));
