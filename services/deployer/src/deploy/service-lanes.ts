import { type Logger, RevisionAges } from '@droplet-mesh/udc-kit';
import type { HeldLease, LaneStore, QueueEntry } from '../store/lane-store.js';

/** How often a waiting deploy makes sure whoever is ahead of it is still alive. */
const BLOCKED_CHECK_MS = 2_000;

export class LaneEntryGone extends Error {
  constructor(deploymentId: string) {
    super(`deployment ${deploymentId} is no longer queued (another deployer settled it)`);
    this.name = 'LaneEntryGone';
  }
}

/**
 * A held service lease, renewed every third of its TTL. `lost` fires when the lease is
 * taken over or cannot be renewed before it expires: the holder must stop changing the
 * service, since another replica may now own it.
 */
export class LaneTurn {
  private ac = new AbortController();
  private timer: NodeJS.Timeout;
  private renewing: Promise<void> = Promise.resolve();
  /** Monotonic time (performance.now) until which the lease is surely ours: ttl after we sent the last write that succeeded. */
  private deadline: number;

  constructor(
    private store: LaneStore,
    private held: HeldLease,
    private ttlMs: number,
    private logger: Logger,
    sentAt: number,
  ) {
    this.deadline = sentAt + ttlMs;
    this.timer = setInterval(() => (this.renewing = this.renew()), Math.max(250, Math.floor(ttlMs / 3)));
    this.timer.unref();
  }

  get lost(): AbortSignal {
    return this.ac.signal;
  }

  private lose(why: string): void {
    clearInterval(this.timer);
    this.ac.abort(new Error(why));
    this.logger.error({ target_id: this.held.target, deployment_id: this.held.value.deployment_id }, why);
  }

  private async renew(): Promise<void> {
    if (this.ac.signal.aborted) return;
    const sentAt = performance.now();
    try {
      // expires_at is for people reading the bucket; no replica decides by it.
      const next = await this.store.renew(this.held, new Date(Date.now() + this.ttlMs).toISOString());
      if (next) {
        this.held = next;
        this.deadline = sentAt + this.ttlMs;
      } else this.lose('lost the service lease: another deployer took it over');
    } catch (err) {
      if (performance.now() >= this.deadline)
        this.lose(`lost the service lease: could not renew it before it expired (${(err as Error).message})`);
    }
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
    if (!this.ac.signal.aborted) await this.store.release(this.held);
  }
}

export interface ServiceLanesDeps {
  store: LaneStore;
  ownerId: string;
  ttlMs: number;
  logger: Logger;
}

/**
 * One deploy per service at a time, across every deployer replica: a FIFO queue and a
 * lease per service, both in JetStream KV. Only the head of the queue may take the lease.
 */
export class ServiceLanes {
  /** How long each lease has gone unrenewed as seen here (monotonic): never another machine's timestamp. */
  private leaseAges = new RevisionAges();

  constructor(private d: ServiceLanesDeps) {}

  /** Join the lane; position 0 means nothing is ahead. */
  async enqueue(target: string, deploymentId: string): Promise<{ position: number; queue: QueueEntry[] }> {
    const mine = await this.d.store.enqueue(target, deploymentId, this.d.ownerId);
    const queue = (await this.d.store.queue(target)).filter((e) => e.revision <= mine.revision);
    return { position: queue.length - 1, queue };
  }

  leave(target: string, deploymentId: string): Promise<void> {
    return this.d.store.dequeue(target, deploymentId);
  }

  queue(target: string): Promise<QueueEntry[]> {
    return this.d.store.queue(target);
  }

  lease(target: string): Promise<HeldLease | undefined> {
    return this.d.store.lease(target);
  }

  /** Remove a stale lease whose deploy is already over (revision-checked). */
  releaseStale(lease: HeldLease): Promise<void> {
    return this.d.store.release(lease);
  }

  targets(): Promise<string[]> {
    return this.d.store.targets();
  }

  async position(target: string, deploymentId: string): Promise<number | undefined> {
    const i = (await this.d.store.queue(target)).findIndex((e) => e.deployment_id === deploymentId);
    return i < 0 ? undefined : i;
  }

  /** Take the lease for a deploy (or a cleanup), replacing exactly `stale` when given. */
  async hold(target: string, deploymentId: string, stale?: HeldLease): Promise<LaneTurn | undefined> {
    const now = Date.now();
    const sentAt = performance.now();
    const held = await this.d.store.acquire(
      target,
      {
        deployment_id: deploymentId,
        owner: this.d.ownerId,
        acquired_at: new Date(now).toISOString(),
        expires_at: new Date(now + this.d.ttlMs).toISOString(),
      },
      stale,
    );
    return held ? new LaneTurn(this.d.store, held, this.d.ttlMs, this.d.logger, sentAt) : undefined;
  }

  /**
   * Not ours, and its owner is gone or stopped renewing it: its revision has stood still for
   * the ttl since this replica first saw it (a holder's `expires_at` comes from its own clock,
   * which may be hours off ours).
   */
  async isStale(lease: HeldLease, alive: (owner: string) => Promise<boolean>): Promise<boolean> {
    if (lease.value.owner === this.d.ownerId) return false;
    const still = this.leaseAges.observe(`lane.${lease.target}.lease`, lease.revision);
    return still >= this.d.ttlMs || !(await alive(lease.value.owner));
  }

  /**
   * Wait until this deploy is at the head of its lane and holds the lease. Wakes on every
   * change to the lane (KV watch); while blocked, `checkAhead` runs every few seconds so a
   * dead replica's deploy ahead is cleaned up and taken out of the way.
   */
  async waitTurn(target: string, deploymentId: string, signal: AbortSignal, checkAhead: () => Promise<void>): Promise<LaneTurn> {
    let changed = false;
    let wake: (() => void) | undefined;
    const stopWatch = await this.d.store.watch(target, () => {
      changed = true;
      wake?.();
    });
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    let lastCheck = Date.now();
    try {
      for (;;) {
        signal.throwIfAborted();
        changed = false;
        const queue = await this.d.store.queue(target);
        const index = queue.findIndex((e) => e.deployment_id === deploymentId);
        if (index < 0) throw new LaneEntryGone(deploymentId);
        if (index === 0 && !(await this.d.store.lease(target))) {
          const turn = await this.hold(target, deploymentId);
          if (turn) return turn;
          continue;
        }
        if (Date.now() - lastCheck >= BLOCKED_CHECK_MS) {
          lastCheck = Date.now();
          await checkAhead();
          continue;
        }
        if (!changed && !signal.aborted) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, BLOCKED_CHECK_MS);
            wake = () => (clearTimeout(t), resolve());
          });
        }
        wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      stopWatch();
    }
  }
}
