export interface DownInterval {
  from: number;
  /** Undefined while still down. */
  to?: number;
}

/**
 * Percentage of the window the target was up, counting only time since we first saw
 * it; null when we have not watched it at all in the window.
 */
export function uptimePercent(down: readonly DownInterval[], firstSeen: number, now: number, windowMs: number): number | null {
  const start = Math.max(now - windowMs, firstSeen);
  if (start >= now) return null;
  let downMs = 0;
  for (const d of down) {
    const from = Math.max(d.from, start);
    const to = Math.min(d.to ?? now, now);
    if (to > from) downMs += to - from;
  }
  const pct = (1 - Math.min(downMs, now - start) / (now - start)) * 100;
  return Math.round(pct * 1000) / 1000;
}
