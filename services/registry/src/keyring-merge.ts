/** The stored key ring, as far as a restore needs to know it (see keyring.ts). */
interface RingOnDisk {
  current: string;
  keys: Array<{ kid: string; retired_at?: string } & Record<string, unknown>>;
}

/**
 * Joins a restored key ring with the one this registry made at start. The registry keeps
 * signing with its own current key (the droplets' tokens stay good); the restored keys come
 * back retired from now, so every token they signed verifies until it expires.
 */
export function mergeKeyrings(incoming: Uint8Array, existing: Uint8Array | undefined, now: Date): Uint8Array {
  if (!existing) return incoming;
  const mine = JSON.parse(Buffer.from(existing).toString('utf8')) as RingOnDisk;
  const theirs = JSON.parse(Buffer.from(incoming).toString('utf8')) as RingOnDisk;
  const known = new Set(mine.keys.map((k) => k.kid));
  const restored = theirs.keys.filter((k) => !known.has(k.kid)).map((k) => ({ ...k, retired_at: k.retired_at ?? now.toISOString() }));
  return Buffer.from(JSON.stringify({ current: mine.current, keys: [...mine.keys, ...restored] }));
}
