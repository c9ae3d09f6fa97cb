import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { Incident, Silence } from '../domain/types.js';
import { fromKeyPart, keyPart } from './keys.js';

const openKey = (targetId: string) => `open.${keyPart(targetId)}`;
const closedKey = (incidentId: string) => `closed.${keyPart(incidentId)}`;
const silenceKey = (targetId: string) => `silence.${keyPart(targetId)}`;

/** How long resolved incidents are kept, and how many at most. */
export interface IncidentRetention {
  retentionMs: number;
  maxResolved: number;
  now?: () => number;
}

const DEFAULT_RETENTION: IncidentRetention = { retentionMs: 30 * 24 * 3600_000, maxResolved: 1000 };

/** When an archived incident ended (for retention): resolved_at, else opened_at. */
const endedAt = (i: Incident) => Date.parse(i.resolved_at ?? i.opened_at) || 0;

/**
 * Incidents in JetStream KV. At most one open incident per target lives under
 * `open.<target>`: creating that key is how monitors agree that exactly one incident
 * opens, and every later change is a compare-and-set on its revision. A resolved
 * incident moves to `closed.<id>`. A watch keeps a local copy for reads. Resolved
 * incidents are bounded: older than the retention, or beyond the maximum (oldest first),
 * they are purged from KV (every monitor may prune; purging is idempotent).
 */
export class IncidentStore {
  private open = new Map<string, { incident: Incident; revision: number }>();
  private closed = new Map<string, Incident>();
  private silenced = new Map<string, Silence>();
  private watcher?: { stop(): void };
  private ready?: Promise<void>;
  private pruning?: Promise<number>;
  private retention: IncidentRetention;

  constructor(
    private kv: KV,
    private log: Logger,
    retention: IncidentRetention = DEFAULT_RETENTION,
  ) {
    this.retention = retention;
  }

  async start(): Promise<void> {
    let initialDone!: () => void;
    this.ready = new Promise<void>((r) => (initialDone = r));
    const iter = await this.kv.watch({ key: '>' });
    this.watcher = iter;
    // No entries at all means nothing to replay.
    const status = await this.kv.status();
    if (status.values === 0) initialDone();
    void (async () => {
      for await (const e of iter) {
        this.apply(e.key, e.operation, e.operation === 'PUT' ? e.string() : '', e.revision);
        if (e.delta === 0) initialDone();
      }
    })().catch((err) => this.log.warn({ err }, 'incident watch ended'));
    await Promise.race([this.ready, new Promise((r) => setTimeout(r, 5000).unref())]);
  }

  private apply(key: string, op: string, raw: string, revision: number): void {
    const [kind] = key.split('.', 1);
    if (kind === 'silence') {
      const target = fromKeyPart(key.slice('silence.'.length));
      if (op !== 'PUT') this.silenced.delete(target);
      else
        try {
          this.silenced.set(target, JSON.parse(raw) as Silence);
        } catch {
          this.log.warn({ key }, 'ignoring a malformed silence');
        }
      return;
    }
    if (op !== 'PUT') {
      if (kind === 'open') for (const [t, v] of this.open) if (openKey(t) === key) this.open.delete(t);
      if (kind === 'closed') this.closed.delete(fromKeyPart(key.slice('closed.'.length)));
      return;
    }
    let inc: Incident;
    try {
      inc = JSON.parse(raw) as Incident;
    } catch {
      this.log.warn({ key }, 'ignoring a malformed incident record');
      return;
    }
    if (kind === 'open') {
      const cur = this.open.get(inc.target_id);
      if (!cur || cur.revision < revision) this.open.set(inc.target_id, { incident: inc, revision });
    } else if (kind === 'closed') {
      this.closed.set(inc.id, inc);
      const cur = this.open.get(inc.target_id);
      if (cur?.incident.id === inc.id) this.open.delete(inc.target_id);
    }
  }

  /** The silence of a target in force at `now`, if any. */
  silenceFor(targetId: string, now: number): Silence | undefined {
    const s = this.silenced.get(targetId);
    return s && Date.parse(s.until) > now ? s : undefined;
  }

  /** Silences in force at `now`, soonest to end first. */
  silences(now: number): Silence[] {
    return [...this.silenced.values()].filter((s) => Date.parse(s.until) > now).sort((a, b) => a.until.localeCompare(b.until));
  }

  async putSilence(s: Silence): Promise<void> {
    await this.kv.put(silenceKey(s.target_id), JSON.stringify(s));
    this.silenced.set(s.target_id, s);
  }

  /** Lift a target's silence; false when it had none in force. */
  async deleteSilence(targetId: string, now: number): Promise<boolean> {
    const had = !!this.silenceFor(targetId, now);
    if (this.silenced.has(targetId)) await this.kv.purge(silenceKey(targetId));
    this.silenced.delete(targetId);
    return had;
  }

  /** Cached: the open incident of a target, if any. */
  openFor(targetId: string): Incident | undefined {
    return this.open.get(targetId)?.incident;
  }

  openIncidents(): Incident[] {
    return [...this.open.values()].map((v) => v.incident);
  }

  all(): Incident[] {
    const byId = new Map<string, Incident>();
    for (const i of this.closed.values()) byId.set(i.id, i);
    for (const { incident } of this.open.values()) byId.set(incident.id, incident);
    return [...byId.values()].sort((a, b) => (a.opened_at < b.opened_at ? 1 : a.opened_at > b.opened_at ? -1 : a.id < b.id ? 1 : -1));
  }

  forTarget(targetId: string): Incident[] {
    return this.all().filter((i) => i.target_id === targetId);
  }

  /** Fresh from KV, for reads that must not lag. */
  async get(id: string): Promise<Incident | undefined> {
    const cached = this.all().find((i) => i.id === id);
    const key = cached && cached.status !== 'resolved' ? openKey(cached.target_id) : closedKey(id);
    const e = await this.kv.get(key);
    if (e && e.operation === 'PUT') {
      const inc = e.json<Incident>();
      if (inc.id === id) return inc;
    }
    if (cached) {
      const again = await this.kv.get(closedKey(id));
      if (again && again.operation === 'PUT') return again.json<Incident>();
    }
    return cached;
  }

  async fetchOpen(targetId: string): Promise<{ incident: Incident; revision: number } | undefined> {
    const e = await this.kv.get(openKey(targetId));
    if (!e || e.operation !== 'PUT') return undefined;
    return { incident: e.json<Incident>(), revision: e.revision };
  }

  /** Create the target's open incident; false when another monitor got there first. */
  async create(incident: Incident): Promise<boolean> {
    try {
      const revision = await this.kv.create(openKey(incident.target_id), JSON.stringify(incident));
      this.apply(openKey(incident.target_id), 'PUT', JSON.stringify(incident), revision);
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
  }

  /**
   * Compare-and-set on the open incident. `change` returns the new incident or
   * undefined to leave it; the result is the incident as written, or undefined when
   * nothing was written (no open incident, `change` declined, or lost every race).
   */
  async update(targetId: string, change: (current: Incident) => Incident | undefined, tries = 5): Promise<Incident | undefined> {
    for (let i = 0; i < tries; i++) {
      const cur = await this.fetchOpen(targetId);
      if (!cur) return undefined;
      const next = change(cur.incident);
      if (!next) return undefined;
      try {
        const revision = await this.kv.update(openKey(targetId), JSON.stringify(next), cur.revision);
        this.apply(openKey(targetId), 'PUT', JSON.stringify(next), revision);
        return next;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    return undefined;
  }

  /** Move a resolved open incident to the archive. Idempotent: any monitor may finish it. */
  async archive(targetId: string): Promise<void> {
    const cur = await this.fetchOpen(targetId);
    if (!cur || cur.incident.status !== 'resolved') return;
    await this.kv.put(closedKey(cur.incident.id), JSON.stringify(cur.incident));
    this.apply(closedKey(cur.incident.id), 'PUT', JSON.stringify(cur.incident), 0);
    try {
      await this.kv.delete(openKey(targetId), { previousSeq: cur.revision });
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
    if (this.closed.size > this.retention.maxResolved) await this.prune();
  }

  /**
   * Purge resolved incidents past the retention, then the oldest beyond the maximum.
   * Returns how many went. Runs at start, after archives past the bound, and periodically.
   */
  prune(): Promise<number> {
    this.pruning ??= this.pruneNow().finally(() => (this.pruning = undefined));
    return this.pruning;
  }

  private async pruneNow(): Promise<number> {
    const now = (this.retention.now ?? Date.now)();
    const newestFirst = [...this.closed.values()].sort((a, b) => endedAt(b) - endedAt(a));
    const drop = newestFirst.filter((i, n) => n >= this.retention.maxResolved || now - endedAt(i) > this.retention.retentionMs);
    for (const i of drop) {
      // Purge, not delete: the key's history goes too.
      await this.kv.purge(closedKey(i.id));
      this.closed.delete(i.id);
    }
    if (drop.length > 0) this.log.info({ pruned: drop.length, kept: this.closed.size }, 'resolved incidents pruned');
    return drop.length;
  }

  stop(): void {
    this.watcher?.stop();
  }
}

/** JetStream refused a write because the key moved on (create of an existing key, stale revision). */
export function isWrongLastSequence(err: unknown): boolean {
  const e = err as { message?: string; code?: unknown };
  return e?.code === 10071 || e?.code === 10164 || /wrong last sequence/i.test(e?.message ?? '');
}
