import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';

/** What an uploaded certificate is, without its key: safe to answer and to log. */
export interface UploadedCertInfo {
  /** First 16 hex digits of the leaf's SHA-256 fingerprint: the same upload twice is one certificate. */
  id: string;
  /** DNS names the leaf covers (subjectAltName, or its CN without one); may start with `*.`. */
  names: string[];
  subject: string;
  issuer: string;
  not_before: string;
  not_after: string;
  serial: string;
  fingerprint_sha256: string;
}

export interface CheckedUpload {
  info: UploadedCertInfo;
  chainPem: string;
  keyPem: Buffer;
}

/** A refused upload: which field, and why (never the value). */
export class UploadRefused extends Error {
  constructor(
    readonly field: 'certificate' | 'key',
    message: string,
  ) {
    super(message);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** A name a certificate may carry: a hostname, or `*.` before one (one wildcard, leftmost label only). */
const CERT_NAME = /^(\*\.)?(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$/;

function namesOf(leaf: X509Certificate): string[] {
  const san = leaf.subjectAltName;
  const names = san
    ? san
        .split(', ')
        .filter((e) => e.startsWith('DNS:'))
        .map((e) => e.slice(4))
    : (/(?:^|\n)CN=([^\n]+)/.exec(leaf.subject)?.[1] ?? '').split('\n').filter(Boolean);
  return [...new Set(names.map((n) => n.toLowerCase()))].filter((n) => CERT_NAME.test(n)).sort();
}

/**
 * `*.example.test` covers exactly one more label (`a.example.test`), never the bare
 * `example.test` nor `b.a.example.test`; any other name covers only itself.
 */
export function covers(names: readonly string[], domain: string): boolean {
  const d = domain.toLowerCase();
  return names.some((n) => {
    if (!n.startsWith('*.')) return n === d;
    const dot = d.indexOf('.');
    return dot > 0 && d.slice(dot + 1) === n.slice(2);
  });
}

/**
 * An uploaded PEM chain and key, checked before anything is stored: the chain parses (leaf
 * first, each certificate signed by the next), the key is an unencrypted private key that
 * matches the leaf, the leaf is valid now and names at least one DNS name.
 */
export function checkUpload(certificatePem: string, keyPem: string, now: number): CheckedUpload {
  const blocks = certificatePem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new UploadRefused('certificate', 'must hold a PEM certificate chain (BEGIN CERTIFICATE), leaf first');
  if (blocks.length > 10) throw new UploadRefused('certificate', 'at most 10 certificates in the chain');
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch {
    throw new UploadRefused('certificate', 'a certificate in the chain does not parse');
  }
  const leaf = chain[0];
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i].checkIssued(chain[i + 1]) || !chain[i].verify(chain[i + 1].publicKey))
      throw new UploadRefused(
        'certificate',
        `certificate ${i + 1} of the chain is not signed by the next one (leaf first, then its issuers)`,
      );
  }
  if (/ENCRYPTED/.test(keyPem)) throw new UploadRefused('key', 'must be an unencrypted private key');
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new UploadRefused('key', 'must be a PEM private key');
  }
  if (!leaf.checkPrivateKey(key)) throw new UploadRefused('key', 'does not match the certificate (the first one of the chain)');
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (notAfter <= now) throw new UploadRefused('certificate', `expired on ${new Date(notAfter).toISOString()}`);
  if (notBefore > now) throw new UploadRefused('certificate', `not valid before ${new Date(notBefore).toISOString()}`);
  const names = namesOf(leaf);
  if (names.length === 0) throw new UploadRefused('certificate', 'names no DNS name (subjectAltName DNS entries or CN)');
  const fingerprint = createHash('sha256').update(leaf.raw).digest('hex');
  return {
    info: {
      id: fingerprint.slice(0, 16),
      names,
      subject: leaf.subject,
      issuer: leaf.issuer,
      not_before: new Date(notBefore).toISOString(),
      not_after: new Date(notAfter).toISOString(),
      serial: leaf.serialNumber,
      fingerprint_sha256: fingerprint,
    },
    // What nginx serves: the chain as given, re-joined in a clean form; the key re-exported (no stray text).
    chainPem: `${blocks.join('\n')}\n`,
    keyPem: Buffer.from(key.export({ type: 'pkcs8', format: 'pem' }) as string),
  };
}
