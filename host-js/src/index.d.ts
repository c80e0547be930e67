// Types of @attest/host-js: attest's policy component in Node.js.

/** Extended key usage required of the leaf. */
export type Purpose = 'clientAuth' | 'serverAuth' | 'any';

/** Unix seconds (bigint or safe integer) or a Date; absent: now. */
export type Time = bigint | number | Date;

/** A certificate of a decision's path, as `host-cli verify --json` prints it. */
export interface CertificateJson {
  subject: string;
  issuer: string;
  commonName: string | null;
  /** Upper-case hex of the serial number's DER content octets. */
  serialNumber: string;
  /** Upper-case hex SHA-256 of the DER. */
  sha256Thumbprint: string;
  notBeforeUtc: string;
  notAfterUtc: string;
}

/** An enrollment entry, by DPS kind and ID. */
export interface EnrollmentRefJson {
  kind: 'individualEnrollment' | 'enrollmentGroup';
  id: string;
}

/** Why something was refused: a stable code, one line, and where. */
export interface RefusalJson {
  /** A WIT `refusal-code`, e.g. `enrollment-group-disabled`. */
  code: string;
  message: string;
  certificate: { position: number; subject: string; sha256Thumbprint: string } | null;
  enrollment: EnrollmentRefJson | null;
}

/** A decision, in the shape of `host-cli verify --json`. */
export interface Decision {
  verdict: 'accepted' | 'refused';
  mode: 'chain' | 'resolve' | 'attest';
  validationTime: string;
  extendedKeyUsage: Purpose;
  /** Accepted: leaf first. */
  path?: CertificateJson[];
  registrationId?: string;
  deviceId?: string;
  enrollment?: EnrollmentRefJson;
  proofOfPossession?: 'verified' | 'not-checked';
  refusal?: RefusalJson;
  /** validateChainRevocation: the mode checked; resolve/attest with CRLs: 'entry'. */
  revocation?: RevocationMode | 'entry';
  /** With CRLs: what a lenient policy let through. */
  warnings?: RefusalJson[];
}

export type RevocationMode = 'off' | 'leaf' | 'chain' | 'configured';

/** An enrollment entry's revocation policy (its `revocationPolicy`). */
export interface EntryRevocation {
  check: RevocationMode;
  admitUndetermined: boolean;
  admitExpired: boolean;
}

export interface RevocationOptions {
  /** Which certificates are checked (default chain). */
  revocation?: RevocationMode;
  /** Admit, with a warning, a certificate whose status cannot be determined. */
  allowUndetermined?: boolean;
  /** Use, with a warning, CRLs past their nextUpdate. */
  allowExpiredCrl?: boolean;
}

/** A CRL that cannot be loaded. */
export class CrlError extends Error {}

/** CRLs indexed by issuer name key (through the component's index-crl). */
export class CrlSet {
  /** @throws CrlError naming the CRL that cannot be loaded. */
  constructor(policy: Policy, ders: Uint8Array[]);
  readonly size: number;
  lookup(key: Uint8Array): Uint8Array[];
}

export interface ChainRequest {
  leaf: Uint8Array;
  intermediates?: Uint8Array[];
  trustAnchors?: Uint8Array[];
  time?: Time;
  purpose?: Purpose;
}

export interface AttestRequest {
  registrationId: string;
  leaf: Uint8Array;
  intermediates?: Uint8Array[];
  time?: Time;
  purpose?: Purpose;
}

/** A challenge signature, or a TLS CertificateVerify (scheme, signed content, signature). */
export type Proof =
  | { challenge: Uint8Array; signature: Uint8Array }
  | { scheme: number; message: Uint8Array; signature: Uint8Array };

/** An individual enrollment as a lookup returns it. */
export interface IndividualEnrollment {
  registrationId: string;
  deviceId?: string;
  enabled: boolean;
  /** SHA-256 of the enrolled device certificate(s). */
  certificates: Uint8Array[];
}

/** An enrollment group as a lookup returns it. */
export interface EnrollmentGroup {
  groupId: string;
  enabled: boolean;
}

/** What a gateway implements to answer the component's lookups. A lookup that throws fails the call (HostError). */
export interface EnrollmentSource {
  individual(registrationId: string): IndividualEnrollment | undefined | null;
  group(caIdentity: Uint8Array): EnrollmentGroup | undefined | null;
  trustAnchors(subjectKey: Uint8Array): Uint8Array[];
  /** The revocation policy of an entry a lookup returned (default: configured). */
  revocation?(entry: { kind: 'individual' | 'group'; id: string }): EntryRevocation | undefined | null;
}

export interface CertificateKeys {
  sha256: Uint8Array;
  subjectKey: Uint8Array;
  caIdentity: Uint8Array;
}

export type Result<T> = { ok: T; refusal?: undefined } | { ok?: undefined; refusal: RefusalJson };

export interface PolicyOptions {
  /** Linear-memory cap of the sandbox, bytes (default 64 MiB), checked after every call. */
  memoryBytes?: number;
}

/** A failure of the host or the sandbox, never a decision. */
export class HostError extends Error {}

/** An enrollment document or file that is not usable. */
export class EnrollmentError extends Error {}

export class Policy {
  constructor(options?: PolicyOptions);
  validateChain(request: ChainRequest): Decision;
  /** Chain validation with revocation checking against `crls` (RFC 5280 §6.3). */
  validateChainRevocation(request: ChainRequest, crls: CrlSet, options?: RevocationOptions): Decision;
  /** A CRL's issuer name key, after the component checked it. */
  indexCrl(der: Uint8Array): { ok: Uint8Array } | { error: string };
  /** With `crls`, the deciding entry's revocation policy is checked against them. */
  resolve(request: AttestRequest, enrollments: EnrollmentSource, crls?: CrlSet): Decision;
  attest(request: AttestRequest, proof: Proof, enrollments: EnrollmentSource, crls?: CrlSet): Decision;
  challengeMessage(registrationId: string, challenge: Uint8Array): Result<Uint8Array>;
  indexCertificate(der: Uint8Array): Result<CertificateKeys>;
  verifyCaPossession(caCertificate: Uint8Array, verificationCertificate: Uint8Array, verificationCode: string, time?: Time): Result<CertificateJson>;
}

/** Enrollments in DPS JSON shapes, as `host-cli verify --enrollments` reads them. */
export class EnrollmentSet implements EnrollmentSource {
  constructor(policy: Policy);
  static fromJson(text: string, policy: Policy): EnrollmentSet;
  insertIndividual(doc: unknown): void;
  insertGroup(doc: unknown): void;
  addAnchor(der: Uint8Array): void;
  readonly counts: { individual: number; groups: number };
  individual(registrationId: string): IndividualEnrollment | undefined;
  group(caIdentity: Uint8Array): EnrollmentGroup | undefined;
  trustAnchors(subjectKey: Uint8Array): Uint8Array[];
}

/** The component's SHA-256 (hex) and size, as the build recorded them. */
export const component: { readonly sha256: string; readonly bytes: number };
export const DEFAULT_MEMORY_BYTES: number;
/** Every algorithm of the WIT `signature-algorithm` enum. */
export const ALGORITHMS: readonly string[];
export function verifySignature(algorithm: string, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
/** The exact text `host-cli verify --json` prints for a decision. */
export function toJson(decision: unknown): string;
export function canonicalJson(value: unknown): string;
export function rfc3339(seconds: bigint | number): string;
/** The DER of every CERTIFICATE section of PEM text, in order (the bytes are not parsed). */
export function pemCertificates(text: string): Uint8Array[];

/** A snapshot that cannot be verified or applied (nothing was changed), or a replica that cannot be used. */
export class SnapshotError extends Error {}

/** Maximum age of a replica's snapshot before every device is refused (`enrollments-stale`): 24 h. */
export const DEFAULT_MAX_AGE_SECONDS: number;

/** The service's snapshot signing key (`host-http snapshot-key` prints it): an Ed25519 public key. */
export class TrustKey {
  /** From PEM (SubjectPublicKeyInfo); throws SnapshotError if it is not an Ed25519 key. */
  static fromPem(text: string): TrustKey;
  /** RFC 7638 JWK thumbprint, the `kid` the service signs with. */
  readonly kid: string;
}

export interface SnapshotHeader {
  /** The format version (1). */
  attestSnapshot: number;
  service: string;
  kid: string;
  version: number;
  /** A delta's base version; null for a full snapshot. */
  since: number | null;
  /** RFC 3339 text; the signed time is `madeAt` of readSnapshot's result. */
  madeAt: string;
}

/** Reads and verifies a snapshot's bytes (every line hashed, the JWS checked, claims against the header). */
export function readSnapshot(bytes: Uint8Array, trustKey: TrustKey): { header: SnapshotHeader; records: unknown[]; madeAt: number };

export interface ReplicaState {
  service: string;
  kid: string;
  version: number;
  /** When the service signed the snapshot held, Unix seconds. */
  madeAt: number;
  /** When this gateway applied it, Unix seconds. */
  syncedAt: number;
}

/**
 * A gateway's replica of a service's enrollments (the format `host-cli sync`
 * downloads), kept in `dir/snapshot-replica.json`; decisions equal the
 * service's at the version held.
 */
export class Replica {
  constructor(dir: string, policy: Policy);
  readonly state: ReplicaState | null;
  /** Verifies and applies a full or delta snapshot atomically; throws SnapshotError (rollback, replay, other service, bad signature…) leaving the replica as it was. */
  apply(bytes: Uint8Array, trustKey: TrustKey, now?: number): { from: number | null; version: number; full: boolean; records: number };
  /** Dry-run resolution; refused `enrollments-stale` once the snapshot is older than `maxAgeSeconds` at `request.time`. */
  resolve(request: AttestRequest, maxAgeSeconds?: number): Decision;
  attest(request: AttestRequest, proof: Proof, maxAgeSeconds?: number): Decision;
}
