import { checkAddress, type Target } from '../domain/types.js';
import type { TargetSource } from './target-source.js';

/** What a fresh read of one target found. */
export type Reread =
  /** Same address as we had (other fields refreshed). */
  | { kind: 'same'; target: Target }
  /** A new address (redeploy to a new port, new health path), or a target we did not know yet. */
  | { kind: 'moved'; from?: Target; target: Target }
  /** The source no longer has it (left the registry, or nothing there to check any more). */
  | { kind: 'gone'; from?: Target }
  /** The source could not answer (registry unreachable): keep what we had. */
  | { kind: 'unverified'; target?: Target; error: unknown };

export interface TargetChange {
  id: string;
  before?: Target;
  /** Undefined: the target is gone. */
  after?: Target;
}

export interface DirectoryOptions {
  /**
   * How stale a listing may be (the registry client caches lists for 5 s; refreshes come
   * every TARGET_REFRESH_MS): for this long a fresh read outranks what a listing says.
   */
  listStalenessMs: number;
  /** At most one hinted re-read per target this often. */
  hintIntervalMs: number;
  /** A fresh read that takes longer counts as unanswered (it gates opening incidents). */
  readTimeoutMs: number;
  now?: () => number;
}

interface FreshRead {
  at: number;
  /** What the read found; undefined = gone. */
  target?: Target;
  /** The newest record version the read knew of (registry clock): a listing with a newer one wins. */
  updated_at?: string;
}

/**
 * The targets this monitor knows, from periodic listings (cheap, possibly stale) and
 * fresh reads of one target (`reread`, uncached). A fresh read wins over listings for
 * `listStalenessMs`, so a cached listing cannot put back an address or a record we
 * already know to be gone. `onChange` hears about every added, moved, changed or
 * removed target.
 */
export class TargetDirectory {
  private byId = new Map<string, Target>();
  private fresh = new Map<string, FreshRead>();
  private inFlight = new Map<string, Promise<Reread>>();
  private lastHint = new Map<string, number>();
  private now: () => number;

  constructor(
    private source: TargetSource,
    private onChange: (changes: TargetChange[]) => void,
    private opts: DirectoryOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  get(id: string): Target | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  all(): Target[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  /** Replace the set from a listing (errors propagate; the source decides what a failed listing means). */
  async refresh(): Promise<void> {
    const listed = new Map((await this.source.list()).map((t) => [t.id, t]));
    const now = this.now();
    for (const [id, f] of this.fresh) if (now - f.at > this.opts.listStalenessMs) this.fresh.delete(id);
    const next = new Map<string, Target>();
    for (const [id, t] of listed) {
      const f = this.fresh.get(id);
      // A record written after our fresh read is newer than what we read (re-registered, moved again).
      if (f && !(f.updated_at && t.updated_at && t.updated_at > f.updated_at)) {
        if (f.target) next.set(id, f.target);
        continue;
      }
      next.set(id, t);
    }
    // Read fresh but not in the (older) listing yet.
    for (const [id, f] of this.fresh) if (f.target && !listed.has(id)) next.set(id, f.target);
    this.replace(next);
  }

  /**
   * Read one target fresh from its source and apply what was found. Concurrent calls
   * for the same id share one read.
   */
  reread(id: string): Promise<Reread> {
    let p = this.inFlight.get(id);
    if (!p) {
      p = this.read(id).finally(() => this.inFlight.delete(id));
      this.inFlight.set(id, p);
    }
    return p;
  }

  /**
   * A peer reported on `address` for this target: when that is not the address we know,
   * one of us is behind, so read the record (rate-limited per target).
   */
  hint(id: string, address: string): void {
    const cur = this.byId.get(id);
    if (cur && checkAddress(cur) === address) return;
    const f = this.fresh.get(id);
    if (f && !f.target) return; // we read it as gone; the peer will learn
    const now = this.now();
    if (now - (this.lastHint.get(id) ?? -Infinity) < this.opts.hintIntervalMs) return;
    this.lastHint.set(id, now);
    void this.reread(id).catch(() => undefined);
  }

  private async read(id: string): Promise<Reread> {
    let found: Target | null;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.opts.readTimeoutMs} ms`)), this.opts.readTimeoutMs);
      });
      found = await Promise.race([this.source.lookup(id), timeout]);
    } catch (error) {
      return { kind: 'unverified', target: this.byId.get(id), error };
    } finally {
      clearTimeout(timer);
    }
    const before = this.byId.get(id);
    const updatedAt = found ? found.updated_at : before?.updated_at;
    this.fresh.set(id, { at: this.now(), ...(found ? { target: found } : {}), ...(updatedAt ? { updated_at: updatedAt } : {}) });
    const next = new Map(this.byId);
    if (found) next.set(id, found);
    else next.delete(id);
    this.replace(next);
    if (!found) return { kind: 'gone', from: before };
    if (!before || checkAddress(before) !== checkAddress(found)) return { kind: 'moved', from: before, target: found };
    return { kind: 'same', target: found };
  }

  private replace(next: Map<string, Target>): void {
    const changes: TargetChange[] = [];
    for (const [id, before] of this.byId) if (!next.has(id)) changes.push({ id, before });
    for (const [id, after] of next) {
      const before = this.byId.get(id);
      if (!before || !sameTarget(before, after)) changes.push({ id, before, after });
    }
    for (const id of this.lastHint.keys()) if (!next.has(id)) this.lastHint.delete(id);
    this.byId = next;
    if (changes.length) this.onChange(changes);
  }
}

function sameTarget(a: Target, b: Target): boolean {
  return (
    a.url === b.url &&
    a.health_path === b.health_path &&
    a.kind === b.kind &&
    a.guard === b.guard &&
    a.heartbeat === b.heartbeat &&
    a.updated_at === b.updated_at &&
    a.recovery.join() === b.recovery.join() &&
    JSON.stringify(a.metadata) === JSON.stringify(b.metadata)
  );
}
