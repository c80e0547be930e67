// Compiled by `npm run typecheck` (tsc --noEmit): the .d.ts describes the API as used.
import { DEFAULT_MAX_AGE_SECONDS, EnrollmentSet, HostError, Policy, Replica, SnapshotError, TrustKey, pemCertificates, readSnapshot, toJson, type Decision, type EnrollmentSource } from '../../src/index.js';

const policy = new Policy({ memoryBytes: 32 << 20 });
const set: EnrollmentSet = EnrollmentSet.fromJson('{}', policy);
const leaf: Uint8Array = pemCertificates('')[0] ?? new Uint8Array(0);
const d: Decision = policy.resolve({ registrationId: 'device-1', leaf, intermediates: [], time: new Date(), purpose: 'clientAuth' }, set);
if (d.verdict === 'refused' && d.refusal) console.log(d.refusal.code, d.refusal.certificate?.position, d.refusal.enrollment?.id);
const source: EnrollmentSource = {
  individual: (id) => (id === 'device-1' ? { registrationId: id, enabled: false, certificates: [] } : undefined),
  group: () => ({ groupId: 'g', enabled: true }),
  trustAnchors: () => [],
};
policy.attest({ registrationId: 'device-1', leaf }, { challenge: leaf, signature: leaf }, source);
policy.attest({ registrationId: 'device-1', leaf }, { scheme: 0x0403, message: leaf, signature: leaf }, source);
const m = policy.challengeMessage('device-1', new Uint8Array(32));
if (m.ok) console.log(m.ok.length); else console.log(m.refusal.code);
console.log(toJson(policy.validateChain({ leaf, trustAnchors: [leaf], time: 1780272000n })), HostError.name);
const replica = new Replica('/tmp/attest-gateway', policy);
const applied = replica.apply(new Uint8Array(0), TrustKey.fromPem(''), 1780272000);
console.log(applied.version, applied.from ?? 'none', replica.state?.madeAt, DEFAULT_MAX_AGE_SECONDS);
const r: Decision = replica.resolve({ registrationId: 'device-1', leaf, time: 1780272000 }, 3600);
replica.attest({ registrationId: 'device-1', leaf }, { challenge: leaf, signature: leaf });
console.log(r.refusal?.code, readSnapshot(new Uint8Array(0), TrustKey.fromPem('')).header.since, new SnapshotError('x').message);
