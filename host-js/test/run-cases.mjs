// The differential harness's Node.js side: reads the jobs that
// host-cli/tests/hosts.rs writes (one JSON object per line), runs each
// through this host, and prints one line per job: {"id", "out"}, where
// "out" is the decision document's exact text (or, for a CLI job, the exit
// code and standard output). The Rust test compares every line with what
// the Rust component host produced for the same job.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';

import { CrlSet, EnrollmentSet, Policy, toJson } from '../src/index.js';
import { run } from '../src/cli.js';
import { Replica, SnapshotError, TrustKey } from '../src/snapshot.js';

const b = (s) => new Uint8Array(Buffer.from(s, 'base64'));
const policy = new Policy();
// Snapshot jobs name a replica; each lives in a directory of this run's.
const replicas = new Map();
const replicaRoot = mkdtempSync(join(tmpdir(), 'attest-replicas-'));
const replica = (name) => {
  // An absolute path names a directory another run (or host) wrote.
  if (!replicas.has(name)) replicas.set(name, new Replica(isAbsolute(name) ? name : join(replicaRoot, name), policy));
  return replicas.get(name);
};

// Revocation jobs name a CRL set an earlier job loaded.
const crlSets = new Map();

function load(job) {
  try {
    const set = EnrollmentSet.fromJson(job.enrollments, policy);
    for (const t of job.trust ?? []) set.addAnchor(b(t));
    return set;
  } catch (e) {
    if (e.name === 'EnrollmentError') return null;
    throw e;
  }
}

function request(job) {
  return {
    registrationId: job.registrationId,
    leaf: b(job.leaf),
    intermediates: job.intermediates.map(b),
    time: BigInt(job.time),
    purpose: job.purpose,
  };
}

function one(job) {
  switch (job.op) {
    case 'validate':
      return toJson(policy.validateChain({ leaf: b(job.leaf), intermediates: job.intermediates.map(b), trustAnchors: job.anchors.map(b), time: BigInt(job.time), purpose: job.purpose }));
    case 'load':
      return load(job) === null ? 'load-error' : 'loaded';
    case 'crls': {
      try {
        crlSets.set(job.name, new CrlSet(policy, job.crls.map(b)));
        return 'loaded';
      } catch (e) {
        if (e.name === 'CrlError') return 'load-error';
        throw e;
      }
    }
    case 'validate-revocation':
      return toJson(policy.validateChainRevocation(
        { leaf: b(job.leaf), intermediates: job.intermediates.map(b), trustAnchors: job.anchors.map(b), time: BigInt(job.time), purpose: job.purpose },
        crlSets.get(job.crls),
        { revocation: job.revocation, allowUndetermined: job.allowUndetermined, allowExpiredCrl: job.allowExpiredCrl },
      ));
    case 'resolve': {
      const set = load(job);
      return set === null ? 'load-error' : toJson(policy.resolve(request(job), set, job.crls === undefined ? undefined : crlSets.get(job.crls)));
    }
    case 'attest': {
      const set = load(job);
      if (set === null) return 'load-error';
      const p = job.proof;
      const proof = p.challenge !== undefined
        ? { challenge: b(p.challenge), signature: b(p.signature) }
        : { scheme: p.scheme, message: b(p.message), signature: b(p.signature) };
      return toJson(policy.attest(request(job), proof, set, job.crls === undefined ? undefined : crlSets.get(job.crls)));
    }
    case 'challengeMessage': {
      const out = policy.challengeMessage(job.registrationId, b(job.challenge));
      return out.ok ? Buffer.from(out.ok).toString('hex') : toJson(out.refusal);
    }
    case 'verifyCaPossession': {
      const out = policy.verifyCaPossession(b(job.ca), b(job.verification), job.code, BigInt(job.time));
      return toJson(out);
    }
    case 'snapshot-apply': {
      try {
        replica(job.replica).apply(readFileSync(job.snapshot), TrustKey.fromPem(job.trustKey), job.now);
        return 'applied';
      } catch (e) {
        if (e instanceof SnapshotError) return 'refused';
        throw e;
      }
    }
    case 'snapshot-resolve':
      return toJson(replica(job.replica).resolve(request(job), job.maxAge));
    case 'cli': {
      const out = run(job.argv);
      return `${out.code}\n${out.stdout}`;
    }
    default:
      throw new Error(`unknown job ${job.op}`);
  }
}

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
const out = [];
for (const line of lines) {
  const job = JSON.parse(line);
  let result;
  try {
    result = { id: job.id, out: one(job) };
  } catch (e) {
    result = { id: job.id, out: `host-error: ${e?.message ?? e}` };
  }
  out.push(JSON.stringify(result));
}
process.stdout.write(out.join('\n') + '\n');
