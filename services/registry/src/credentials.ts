import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Compares in constant time (both sides hashed to equal length first). */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (!given) return false;
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(expected).digest());
}

export function keyMatchesHash(given: string | undefined, hash: string | undefined): boolean {
  if (!given || !hash) return false;
  return timingSafeEqual(Buffer.from(hashKey(given), 'hex'), Buffer.from(hash, 'hex'));
}

/** A droplet key: 32 random bytes, shown once, stored only as a hash. */
export function newDropletKey(): string {
  return `dk_${randomBytes(32).toString('base64url')}`;
}
