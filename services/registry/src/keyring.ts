import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes, randomUUID, scryptSync, createPublicKey } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import jwt from 'jsonwebtoken';
import type { Logger } from '@droplet-mesh/udc-kit';
import { Unauthorized } from '@droplet-mesh/udc-kit';

/** A signing key as stored: the private half encrypted with a key derived from the admin key. */
interface StoredKey {
  kid: string;
  public_pem: string;
  private_enc: string; // base64(salt | iv | tag | ciphertext)
  created_at: string;
  /** Set when a newer key took over; published until every token it signed has expired. */
  retired_at?: string;
}
interface StoredKeyring {
  current: string;
  keys: StoredKey[];
}

const KEYRING_KEY = 'keyring';

function encrypt(plain: string, secret: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(secret, salt, 32);
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return Buffer.concat([salt, iv, c.getAuthTag(), ct]).toString('base64');
}

function decrypt(blob: string, secret: string): string {
  const b = Buffer.from(blob, 'base64');
  const key = scryptSync(secret, b.subarray(0, 16), 32);
  const d = createDecipheriv('aes-256-gcm', key, b.subarray(16, 28));
  d.setAuthTag(b.subarray(28, 44));
  return Buffer.concat([d.update(b.subarray(44)), d.final()]).toString('utf8');
}

function newKey(adminKey: string): StoredKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    kid: randomUUID(),
    public_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    private_enc: encrypt(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), adminKey),
    created_at: new Date().toISOString(),
  };
}

/**
 * RS256 signing keys kept in a JetStream KV bucket, so registry replicas sign with the
 * same key and a restart keeps it. Private keys are encrypted at rest with a key derived
 * from REGISTRY_ADMIN_KEY.
 */
export class Keyring {
  private ring!: StoredKeyring;
  private revision = 0;
  private privatePem = new Map<string, string>();
  private stopWatch?: () => void;
  /** When an unknown kid last made us re-read the bucket, and that read if it is under way. */
  private lastKidReload = Number.NEGATIVE_INFINITY;
  private kidReload?: Promise<void>;

  constructor(
    private kv: KV,
    private adminKey: string,
    private tokenTtlS: number,
    private logger: Logger,
    private now: () => number = Date.now,
    /** An unknown kid re-reads the key bucket at most this often (the watch keeps the ring current anyway). */
    private kidReloadMinIntervalMs = 1000,
  ) {}

  async init(): Promise<void> {
    const existing = await this.kv.get(KEYRING_KEY);
    if (!existing || existing.operation !== 'PUT') {
      const ring: StoredKeyring = { current: '', keys: [] };
      const k = newKey(this.adminKey);
      ring.keys.push(k);
      ring.current = k.kid;
      try {
        await this.kv.create(KEYRING_KEY, JSON.stringify(ring));
        this.logger.info({ kid: k.kid }, 'created the registry signing key');
      } catch {
        // Another replica created it first; use theirs.
      }
    }
    await this.reload();
    const w = await this.kv.watch({ key: KEYRING_KEY });
    this.stopWatch = () => w.stop();
    void (async () => {
      for await (const e of w) if (e.operation === 'PUT' && e.revision > this.revision) this.load(e.json<StoredKeyring>(), e.revision);
    })();
  }

  private async reload(): Promise<void> {
    const e = await this.kv.get(KEYRING_KEY);
    if (!e) throw new Error('keyring missing from KV');
    this.load(e.json<StoredKeyring>(), e.revision);
  }

  private load(ring: StoredKeyring, revision: number): void {
    this.ring = ring;
    this.revision = revision;
  }

  private privateKeyOf(kid: string): string {
    let pem = this.privatePem.get(kid);
    if (!pem) {
      const k = this.ring.keys.find((x) => x.kid === kid);
      if (!k) throw new Error(`no key ${kid}`);
      try {
        pem = decrypt(k.private_enc, this.adminKey);
      } catch {
        throw new Error('cannot decrypt the signing key: REGISTRY_ADMIN_KEY differs from the one that created it');
      }
      this.privatePem.set(kid, pem);
    }
    return pem;
  }

  /** Fails early, at start, when the admin key cannot open the stored key. */
  assertUsable(): void {
    this.privateKeyOf(this.ring.current);
  }

  sign(
    claims: { sub: string; droplet_id: string; scopes: string[] },
    issuer: string,
    audience: string,
  ): { token: string; expires_at: string; kid: string; jti: string } {
    const kid = this.ring.current;
    // A token id, so that one token can be revoked (POST /auth/revoke).
    const jti = randomUUID();
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + this.tokenTtlS;
    const token = jwt.sign({ droplet_id: claims.droplet_id, scopes: claims.scopes, iat, exp }, this.privateKeyOf(kid), {
      algorithm: 'RS256',
      keyid: kid,
      subject: claims.sub,
      issuer,
      audience,
      jwtid: jti,
    });
    return { token, expires_at: new Date(exp * 1000).toISOString(), kid, jti };
  }

  /** Keys still able to verify a live token: the current one and those retired less than a token lifetime ago. */
  private liveKeys(): StoredKey[] {
    return this.ring.keys.filter((k) => !k.retired_at || this.now() - Date.parse(k.retired_at) < this.tokenTtlS * 1000 + 60_000);
  }

  jwks() {
    return {
      keys: this.liveKeys().map((k) => ({
        ...createPublicKey(k.public_pem).export({ format: 'jwk' }),
        kid: k.kid,
        use: 'sig',
        alg: 'RS256',
      })),
    };
  }

  async publicKeyPem(kid: string | undefined): Promise<string> {
    let k = this.liveKeys().find((x) => x.kid === kid);
    if (!k) {
      // Maybe another replica rotated a moment ago and the watch has not told us yet. Made-up
      // kids must not cost a KV read each: one read at a time, at most once per interval.
      if (!this.kidReload && Date.now() - this.lastKidReload >= this.kidReloadMinIntervalMs) {
        this.lastKidReload = Date.now();
        this.kidReload = this.reload()
          .catch((err) => this.logger.warn({ err }, 'could not re-read the keyring'))
          .finally(() => (this.kidReload = undefined));
      }
      await this.kidReload;
      k = this.liveKeys().find((x) => x.kid === kid);
    }
    if (!k) throw new Unauthorized('token signed by an unknown key');
    return k.public_pem;
  }

  /** A new signing key; the old one stays published until its tokens have expired. */
  async rotate(): Promise<{ kid: string; previous: string }> {
    for (let attempt = 0; attempt < 5; attempt++) {
      await this.reload();
      const previous = this.ring.current;
      const k = newKey(this.adminKey);
      const at = new Date(this.now()).toISOString();
      const keys = this.liveKeys().map((x) => (x.kid === previous ? { ...x, retired_at: at } : x));
      const next: StoredKeyring = { current: k.kid, keys: [...keys, k] };
      try {
        const rev = await this.kv.update(KEYRING_KEY, JSON.stringify(next), this.revision);
        this.load(next, rev);
        this.logger.info({ kid: k.kid, previous }, 'rotated the signing key');
        return { kid: k.kid, previous };
      } catch {
        // A concurrent rotation won; try again on top of it.
      }
    }
    throw new Error('could not rotate the signing key: too much contention');
  }

  stop(): void {
    this.stopWatch?.();
  }
}
