import type { KV } from '@nats-io/kv';

/**
 * A KV whose bucket is opened on first use, so the droplet can be built synchronously.
 * Only the calls the stores make are forwarded.
 */
export function lazyKv(open: () => Promise<KV>): KV {
  let p: Promise<KV> | undefined;
  const get = () =>
    (p ??= open().catch((err) => {
      p = undefined;
      throw err;
    }));
  return new Proxy({} as KV, {
    get(_t, prop) {
      return async (...args: unknown[]) => {
        const kv = await get();
        const fn = (kv as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[prop];
        return fn.apply(kv, args);
      };
    },
  });
}
