import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';

/** Fixed salt: the key must be the same on every console replica that shares the secret. */
const SALT = 'droplet-mesh console sessions v1';

/**
 * Seals what a session must keep secret (the operator token, the CSRF token) before it goes
 * into NATS: AES-256-GCM with a key derived once from the console's session secret, bound to
 * the entry it belongs to (its key and expiry), so a sealed value copied onto another entry
 * does not open.
 */
export class SessionSealer {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = scryptSync(secret, SALT, 32);
  }

  seal(plain: string, context: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(context));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
  }

  /** The plain text, or undefined when the value was sealed with another secret or for another entry, or altered. */
  open(sealed: string, context: string): string | undefined {
    try {
      const b = Buffer.from(sealed, 'base64');
      if (b.length < 29) return undefined;
      const d = createDecipheriv('aes-256-gcm', this.key, b.subarray(0, 12));
      d.setAuthTag(b.subarray(12, 28));
      d.setAAD(Buffer.from(context));
      return Buffer.concat([d.update(b.subarray(28)), d.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}
