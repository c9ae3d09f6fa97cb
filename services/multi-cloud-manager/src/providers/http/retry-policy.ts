// When and how long to wait before another attempt at a provider call.

/** RFC 9110: these methods may be repeated without changing the outcome. POST never is here. */
export function isIdempotent(method: string): boolean {
  return ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'].includes(method.toUpperCase());
}

/** Exponential backoff with full jitter (AWS architecture blog): spreads retries of many clients. */
export function backoffMs(attempt: number, baseMs = 200, capMs = 5000, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

type HeaderValue = string | string[] | undefined;
const first = (v: HeaderValue) => (Array.isArray(v) ? v[0] : v);

/**
 * How long a 429 asks us to wait, from `retry-after` (seconds or HTTP date) or
 * `ratelimit-reset` (DigitalOcean and Hetzner send a Unix time; some APIs send seconds).
 */
export function rateLimitWaitMs(headers: Record<string, HeaderValue>, now = Date.now()): number | undefined {
  const retryAfter = first(headers['retry-after'])?.trim();
  if (retryAfter) {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return Math.max(0, Number(retryAfter) * 1000);
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = first(headers['ratelimit-reset'])?.trim();
  if (reset && /^\d+$/.test(reset)) {
    const n = Number(reset);
    // A value this large is an epoch time, not a delay.
    return n > 1e9 ? Math.max(0, n * 1000 - now) : n * 1000;
  }
  return undefined;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
