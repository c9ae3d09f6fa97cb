/**
 * Leases in JetStream KV that never compare clocks across machines.
 *
 * A timestamp written by one machine and compared with `Date.now()` on another is only as
 * good as the two clocks: a holder whose clock runs an hour ahead writes a lease nobody can
 * take for an hour after it died; a contender whose clock runs an hour ahead steals a live
 * lease at once. Here the only clock is each process's own monotonic one
 * (`performance.now()`), and the only shared fact is the key's KV revision:
 *
 * - a contender that sees revision R first notes *when it saw R* on its own monotonic clock;
 *   if R is still the current revision `ttl` later, the holder has not renewed, and the
 *   contender takes over with compare-and-set on R (so of many contenders exactly one wins);
 * - the holder renews by compare-and-set every fraction of the ttl and believes it holds the
 *   lease only until `ttl` after it *sent* its last successful renewal. Every contender saw
 *   that revision no earlier than it was written, so the holder always lets go first.
 *
 * Only clock *rates* matter (monotonic clocks drift by parts per million), never offsets.
 */
import type { KV, KvEntry } from '@nats-io/kv';

/** What a lease key holds. `acquired_at` is for people reading the bucket; no decision uses it. */
export interface LeaseRecord<D = unknown> {
  holder: string;
  ttl_ms: number;
  acquired_at: string;
  data?: D;
}

/** JetStream's answer to a compare-and-set on a revision that is no longer current. */
export function isRevisionConflict(err: unknown): boolean {
  const e = err as { message?: string; code?: unknown };
  return e?.code === 10071 || e?.code === 10164 || /wrong last sequence|key exists/i.test(e?.message ?? '');
}

/**
 * How long, on this process's monotonic clock, a key has stayed at one revision since this
 * process first saw that revision. The building block for judging a lease stale without
 * trusting a timestamp someone else wrote.
 */
export class RevisionAges {
  private seen = new Map<string, { revision: number; since: number }>();

  constructor(private monotonic: () => number = () => performance.now()) {}

  /** Milliseconds since `revision` of `key` was first observed here (0 the first time). */
  observe(key: string, revision: number): number {
    const now = this.monotonic();
    const s = this.seen.get(key);
    if (!s || s.revision !== revision) {
      this.seen.set(key, { revision, since: now });
      return 0;
    }
    return now - s.since;
  }

  forget(key: string): void {
    this.seen.delete(key);
  }
}

export interface KvLeaseOptions {
  /** Who this process is (a droplet instance id): the value of `holder` in the records it writes. */
  holder: string;
  /** How long a holder that stopped renewing keeps the lease. Contenders use the ttl in the record. */
  ttlMs: number;
  /** The monotonic clock (performance.now); tests pass their own. */
  monotonic?: () => number;
  /** Only for `acquired_at` in the record, which no decision reads. */
  wallClock?: () => number;
  /** Maps a lease name to its KV key (default: the name itself). */
  key?: (name: string) => string;
}

interface Held {
  revision: number;
  /** Monotonic time after which this process no longer believes it holds the lease. */
  deadline: number;
  ttlMs: number;
  data?: unknown;
}

/** A set of named leases in one KV bucket, as seen by one holder. */
export class KvLease<D = unknown> {
  private held = new Map<string, Held>();
  private ages: RevisionAges;
  private mono: () => number;
  private wall: () => number;
  private keyOf: (name: string) => string;

  constructor(
    private kv: KV,
    private o: KvLeaseOptions,
  ) {
    this.mono = o.monotonic ?? (() => performance.now());
    this.wall = o.wallClock ?? Date.now;
    this.keyOf = o.key ?? ((n) => n);
    this.ages = new RevisionAges(this.mono);
  }

  get holder(): string {
    return this.o.holder;
  }

  /** Held by this process, and its last renewal is recent enough that no one else can have taken it. */
  holds(name: string): boolean {
    const h = this.held.get(name);
    if (!h) return false;
    if (this.mono() < h.deadline) return true;
    this.held.delete(name);
    return false;
  }

  /** Milliseconds this holder may still act on `name` without renewing (0 when not held). */
  remainingMs(name: string): number {
    const h = this.held.get(name);
    return h ? Math.max(0, h.deadline - this.mono()) : 0;
  }

  /** The record under `name`, with its revision; undefined when free. */
  async read(name: string): Promise<(LeaseRecord<D> & { revision: number }) | undefined> {
    const e = await this.kv.get(this.keyOf(name));
    const r = e && parseRecord<D>(e);
    return r ? { ...r, revision: e.revision } : undefined;
  }

  /**
   * Who holds `name`, judged without clocks: its holder while the record keeps changing, or
   * until it has stood still for its ttl as observed here. Undefined when free or expired.
   */
  async holderOf(name: string): Promise<string | undefined> {
    const e = await this.kv.get(this.keyOf(name));
    const r = e && parseRecord(e);
    if (!e || !r) return undefined;
    if (r.holder === this.o.holder) return this.holds(name) ? r.holder : undefined;
    return this.ages.observe(this.keyOf(name), e.revision) < ttlOf(r, this.o.ttlMs) ? r.holder : undefined;
  }

  /**
   * Take `name`, or renew it when held. False when another holder has it: a record that is
   * not ours counts as abandoned only once its revision has stood still for its ttl, measured
   * here from when this process first saw that revision. Contenders poll this.
   */
  async acquire(name: string, opts: { ttlMs?: number; data?: D } = {}): Promise<boolean> {
    if (this.holds(name)) return this.renew(name, opts.data);
    const key = this.keyOf(name);
    const ttlMs = opts.ttlMs ?? this.o.ttlMs;
    try {
      const e = await this.kv.get(key);
      const current = e && parseRecord(e);
      if (e && current && current.holder !== this.o.holder) {
        // A live holder renews; a dead one leaves the revision where it was.
        if (this.ages.observe(key, e.revision) < ttlOf(current, this.o.ttlMs)) return false;
      }
      const sentAt = this.mono();
      const value = this.encode(ttlMs, opts.data);
      // Absent: create. Deleted, expired or (after a restart) our own: replace exactly that revision.
      const revision = e ? await this.kv.update(key, value, e.revision) : await this.kv.create(key, value);
      this.held.set(name, { revision, deadline: sentAt + ttlMs, ttlMs, data: opts.data });
      this.ages.forget(key);
      return true;
    } catch (err) {
      if (isRevisionConflict(err)) return false;
      throw err;
    }
  }

  /**
   * Extend a held lease (compare-and-set on the revision we wrote). False, and no longer
   * held, when someone else took it or its deadline passed; an error (NATS unreachable)
   * leaves it held until its deadline, so a short outage does not drop the work.
   */
  async renew(name: string, data?: D): Promise<boolean> {
    const h = this.held.get(name);
    if (!h || !this.holds(name)) return false;
    const sentAt = this.mono();
    try {
      const nextData = data ?? h.data;
      const revision = await this.kv.update(this.keyOf(name), this.encode(h.ttlMs, nextData as D | undefined), h.revision);
      this.held.set(name, { ...h, revision, deadline: sentAt + h.ttlMs, data: nextData });
      return true;
    } catch (err) {
      if (isRevisionConflict(err)) {
        this.held.delete(name);
        return false;
      }
      throw err;
    }
  }

  /** Give `name` up at once (only if the record is still the revision we wrote). */
  async release(name: string): Promise<void> {
    const h = this.held.get(name);
    this.held.delete(name);
    if (!h) return;
    await this.kv.delete(this.keyOf(name), { previousSeq: h.revision }).catch(() => undefined);
  }

  /** Forget held leases without touching KV (they lapse after their ttl). */
  forgetAll(): void {
    this.held.clear();
  }

  private encode(ttlMs: number, data: D | undefined): string {
    const record: LeaseRecord<D> = { holder: this.o.holder, ttl_ms: ttlMs, acquired_at: new Date(this.wall()).toISOString() };
    if (data !== undefined) record.data = data;
    return JSON.stringify(record);
  }
}

function parseRecord<D>(e: KvEntry): LeaseRecord<D> | undefined {
  if (e.operation !== 'PUT' || e.length === 0) return undefined;
  try {
    const v = e.json<Partial<LeaseRecord<D>>>();
    return typeof v.holder === 'string' ? (v as LeaseRecord<D>) : undefined;
  } catch {
    return undefined;
  }
}

/** The record's own ttl; a record from an older format (an `expires_at` timestamp) gets ours. */
const ttlOf = (r: Partial<LeaseRecord>, fallback: number) =>
  typeof r.ttl_ms === 'number' && r.ttl_ms > 0 ? Math.min(r.ttl_ms, 24 * 3600_000) : fallback;
