// The mesh CA: one certificate authority, created once and kept in the deployer's KV bucket
// with its private key sealed by DEPLOYER_MASTER_KEY. It signs one server certificate per
// Docker Engine (the engine's --tlscert, with the engine's addresses as SANs) and the
// deployer's client certificates. Engines are reached only over mutual TLS trusting this CA
// alone: an engine presenting any other certificate is refused by the TLS handshake.
import { createHash, createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { openSecret, sealSecret, type SealedSecret } from './secrets-crypto.js';

let x509Loading: Promise<typeof X509> | undefined;
/** @peculiar/x509 (with its ASN.1 stack, ~16 MB of RSS) loads when a certificate is first made, not at start. */
const loadX509 = () =>
  (x509Loading ??= import('@peculiar/x509').then((x509) => {
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    return x509;
  }));
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** The AAD of the sealed CA key: it cannot be moved to another record. */
const CA_KEY_CONTEXT = 'mesh-ca/key';
export const MESH_CA_KV_KEY = 'meshca.current';

/**
 * The name every engine certificate carries for its server id (a DNS subjectAltName under the
 * private-use `.internal`): the deployer checks an engine presents the certificate of the server
 * it means to reach, whatever address it answers at, so a certificate can be issued before a
 * new machine has an address, and one server's key does not open another's connection.
 */
export const engineIdentity = (serverId: string) => `${serverId}.engine.droplet-mesh.internal`;

export interface MeshCa {
  /** PEM of the CA certificate (what every engine and client trusts). */
  certPem: string;
  /** PEM (PKCS#8) of the CA key: only in memory, sealed at rest. */
  keyPem: string;
}

export interface IssuedCertificate {
  cert: string;
  key: string;
  ca: string;
  not_after: string;
  fingerprint_sha256: string;
}

/** What is stored: the certificate in the clear, the key sealed. */
export interface SealedMeshCa {
  certificate: string;
  key_sealed: SealedSecret;
  created_at: string;
}

const serial = () => {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive
  return b.toString('hex');
};

const toPem = (der: ArrayBuffer, label: string) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')}\n-----END ${label}-----\n`;

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

async function privatePem(key: CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importSigningKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
}

export function fingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/** A new CA (ECDSA P-256), valid `days`. */
export async function createMeshCa(days = 3650): Promise<MeshCa> {
  const x509 = await loadX509();
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Droplet Mesh CA ${createHash('sha256').update(randomBytes(8)).digest('hex').slice(0, 8)}, O=Droplet Mesh`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privatePem(keys.privateKey) };
}

export interface CertificateRequest {
  kind: 'server' | 'client';
  commonName: string;
  /** Server certificates: the addresses (IPs or DNS names) the engine is reached at. */
  addresses?: string[];
  days?: number;
}

/** A leaf certificate signed by the CA, with a fresh key (returned once, never stored here). */
export async function issueCertificate(ca: MeshCa, req: CertificateRequest): Promise<IssuedCertificate> {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(req.commonName)) throw new Error('commonName must be 1-64 of A-Z a-z 0-9 . _ -');
  const addresses = req.addresses ?? [];
  if (req.kind === 'server' && addresses.length === 0) throw new Error('a server certificate needs at least one address');
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(ca.certPem);
  const keys = await newKeys();
  const now = Date.now();
  const days = req.days ?? 397;
  const notAfter = new Date(Math.min(now + days * DAY_MS, caCert.notAfter.getTime()));
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([req.kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (addresses.length > 0)
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        addresses.map((a) => (isIP(a) ? { type: 'ip' as const, value: a } : { type: 'dns' as const, value: a })),
      ),
    );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${req.commonName}, O=Droplet Mesh`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: await importSigningKey(ca.keyPem),
    signingAlgorithm: ALG,
    extensions,
  });
  const pem = cert.toString('pem');
  return {
    cert: pem,
    key: await privatePem(keys.privateKey),
    ca: ca.certPem,
    not_after: notAfter.toISOString(),
    fingerprint_sha256: fingerprint(pem),
  };
}

/** True when `certPem` was signed by this CA (and is within its validity). */
export function issuedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    const t = Date.now();
    return cert.checkIssued(ca) && cert.verify(ca.publicKey) && Date.parse(cert.validTo) > t && Date.parse(cert.validFrom) <= t;
  } catch {
    return false;
  }
}

export function sealMeshCa(masterKey: Buffer, ca: MeshCa): SealedMeshCa {
  return { certificate: ca.certPem, key_sealed: sealSecret(masterKey, ca.keyPem, CA_KEY_CONTEXT), created_at: new Date().toISOString() };
}

export function openMeshCa(masterKey: Buffer, sealed: SealedMeshCa): MeshCa {
  return { certPem: sealed.certificate, keyPem: openSecret(masterKey, sealed.key_sealed, CA_KEY_CONTEXT) };
}

/** The part of a JetStream KV bucket this needs (so tests can pass a map). */
export interface CaKv {
  get(key: string): Promise<{ operation: string; length: number; json<T>(): T } | null>;
  create(key: string, value: string): Promise<number>;
}

/**
 * The mesh's CA from KV, created on first use. Replicas racing to create it agree: the
 * first `create` wins and the others read its record. A record that the master key cannot
 * open is an error (never silently replaced: every engine trusts the old CA).
 */
export async function loadOrCreateMeshCa(kv: CaKv, masterKey: Buffer): Promise<MeshCa> {
  const read = async () => {
    const e = await kv.get(MESH_CA_KV_KEY);
    return e && e.operation === 'PUT' && e.length > 0 ? e.json<SealedMeshCa>() : undefined;
  };
  let sealed = await read();
  if (!sealed) {
    const fresh = await createMeshCa();
    try {
      await kv.create(MESH_CA_KV_KEY, JSON.stringify(sealMeshCa(masterKey, fresh)));
      return fresh;
    } catch (err) {
      if (!/wrong last sequence|exists/i.test((err as Error).message)) throw err;
      sealed = await read();
      if (!sealed) throw err;
    }
  }
  try {
    return openMeshCa(masterKey, sealed);
  } catch {
    throw new Error('the mesh CA in KV cannot be opened with this DEPLOYER_MASTER_KEY (was the key changed?)');
  }
}
