/**
 * Work that finishes `durationMs` after `startedAt`. Emulators compute state from the clock when
 * asked instead of running timers, so nothing keeps the process alive and tests stay deterministic.
 */
export interface Timed {
  startedAt: number;
  durationMs: number;
}

export function isDone(t: Timed, now: number): boolean {
  return now >= t.startedAt + t.durationMs;
}

/** 0-100, reaching 100 only when done. */
export function progressOf(t: Timed, now: number): number {
  if (isDone(t, now)) return 100;
  return Math.min(99, Math.max(0, Math.floor(((now - t.startedAt) / t.durationMs) * 100)));
}

export function finishedAt(t: Timed): number {
  return t.startedAt + t.durationMs;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
