import { createCipheriv, createDecipheriv, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { KvLease, type Logger } from '@droplet-mesh/udc-kit';
import { watchUpdates, type KeyChange, type KeyWatch } from '../store/kv-watch.js';

export interface SharedCertificate {
  keyPem: Buffer;
  chainPem: string;
  notAfter: number;
  serial: string;
}

export type SealedKey = { enc: 'aes-256-gcm'; iv: string; tag: string; data: string } | { enc: 'none'; pem: string };
interface StoredCertificate {
  chain_pem: string;
  key: SealedKey;
  issued_by: string;
  stored_at: string;
}
export interface SharedCertStoreOptions {
  /** 32 bytes: private keys are sealed with AES-256-GCM before they reach the bucket. */
  encryptionKey?: Buffer;
  replicaId: string;
  logger: Logger;
}

/**
 * Issued certificates and their keys in a KV bucket (`cert.<domain>`), so every replica
 * serves the same certificate and only one of them ever asks the CA. The key is sealed with
 * AES-256-GCM when a key is configured, bound to its domain (the AAD), so a value copied to
 * another domain's key does not open. A value is only accepted when the certificate names
 * the domain and the key matches it. `lease.<domain>` makes one replica the issuer at a time.
 */
export class SharedCertStore {
  /** Judged by the key's revision and this replica's monotonic clock: replicas on other machines never compare wall clocks. */
  private lease: KvLease;

  constructor(
    private kv: KV,
    private o: SharedCertStoreOptions,
  ) {
    this.lease = new KvLease(kv, { holder: o.replicaId, ttlMs: 120_000, key: (domain) => `lease.${domain}` });
  }

  get encrypted(): boolean {
    return !!this.o.encryptionKey;
  }

  private seal(domain: string, keyPem: Buffer): SealedKey {
    return this.sealKey(`cert.${domain}`, keyPem);
  }

  private open(domain: string, key: SealedKey): Buffer {
    return this.openKey(`cert.${domain}`, key);
  }

  /** Seal a private key bound to `aad` (the KV key it is stored under), so it opens nowhere else. */
  sealKey(aad: string, keyPem: Buffer): SealedKey {
    if (!this.o.encryptionKey) return { enc: 'none', pem: keyPem.toString('utf8') };
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.o.encryptionKey, iv);
    c.setAAD(Buffer.from(aad));
    const data = Buffer.concat([c.update(keyPem), c.final()]);
    return { enc: 'aes-256-gcm', iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
  }

  openKey(aad: string, key: SealedKey): Buffer {
    if (key.enc === 'none') return Buffer.from(key.pem, 'utf8');
    if (!this.o.encryptionKey) throw new Error('the stored key is encrypted and CERT_ENCRYPTION_KEY is not set here');
    const d = createDecipheriv('aes-256-gcm', this.o.encryptionKey, Buffer.from(key.iv, 'base64'));
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(Buffer.from(key.tag, 'base64'));
    return Buffer.concat([d.update(Buffer.from(key.data, 'base64')), d.final()]);
  }

  async get(domain: string): Promise<SharedCertificate | undefined> {
    const e = await this.kv.get(`cert.${domain}`);
    if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
    try {
      const v = e.json<StoredCertificate>();
      const keyPem = this.open(domain, v.key);
      const cert = new X509Certificate(v.chain_pem);
      if (!cert.checkHost(domain)) throw new Error('the certificate does not name the domain');
      if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the key does not match the certificate');
      return { keyPem, chainPem: v.chain_pem, notAfter: Date.parse(cert.validTo), serial: cert.serialNumber };
    } catch (err) {
      // Never the value itself in a log line: only why it was refused.
      this.o.logger.warn({ domain, action: 'cert.fetch', result: 'refused', reason: (err as Error).message }, 'shared certificate ignored');
      return undefined;
    }
  }

  async put(domain: string, keyPem: Buffer | string, chainPem: string): Promise<void> {
    const value: StoredCertificate = {
      chain_pem: chainPem,
      key: this.seal(domain, Buffer.from(keyPem)),
      issued_by: this.o.replicaId,
      stored_at: new Date().toISOString(),
    };
    await this.kv.put(`cert.${domain}`, JSON.stringify(value));
  }

  /**
   * Become the one replica that talks to the CA for `domain`, for `ttlMs` (compare-and-set).
   * A lease another replica left behind is taken once it has gone `ttlMs` unrenewed, as
   * measured here from when this replica first saw it.
   */
  async acquireLease(domain: string, ttlMs: number): Promise<boolean> {
    return this.lease.acquire(domain, { ttlMs }).catch(() => false);
  }

  async releaseLease(domain: string): Promise<void> {
    await this.lease.release(domain);
  }

  watch(onChange: (c: KeyChange) => void): Promise<KeyWatch> {
    return watchUpdates(this.kv, 'cert.>', onChange);
  }
}
