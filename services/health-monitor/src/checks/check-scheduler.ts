import type { Logger } from 'pino';
import { checkAddress, type Observation, type Target } from '../domain/types.js';
import type { ControlCheck } from './control-check.js';
import type { HttpProbe } from './http-checker.js';

export interface SchedulerOptions {
  monitorId: string;
  intervalMs: number;
  timeoutMs: number;
  recheckDelayMs: number;
  failsToSuspect: number;
  concurrency: number;
  /** Test hook: {"<target id>"|"*": url} replaces where a check goes. */
  urlOverride: Record<string, string>;
}

interface TargetState {
  target: Target;
  /** checkAddress(target): a state is about one address; a new address gets a new state. */
  address: string;
  timer?: NodeJS.Timeout;
  running: boolean;
  failures: number;
  successes: number;
  lastOk?: boolean;
}

/** How long an observation may wait to be published with others. */
const PUBLISH_BATCH_MS = 5;
/** Observations per message at most: ~400 bytes each, well under NATS's 1 MB default payload limit. */
const MAX_BATCH = 500;

/** Runs this monitor's checks of its assigned targets and publishes each result. */
export class CheckScheduler {
  private states = new Map<string, TargetState>();
  private inFlight = 0;
  private waiting: Array<() => void> = [];
  private stopped = false;
  private failingNow = 0;
  /** Observations of the last PUBLISH_BATCH_MS, published together (see queue). */
  private pending: Observation[] = [];
  checksDone = 0;

  constructor(
    private opts: SchedulerOptions,
    private probe: HttpProbe,
    private control: ControlCheck,
    /** The observations of one batch (see queue), in the order the checks ended. */
    private publish: (batch: Observation[]) => void,
    private log: Logger,
    private now: () => number = Date.now,
    /** Targets with an open incident: checked every RECHECK_DELAY_MS, so their return is seen soon. */
    private underIncident: (targetId: string) => boolean = () => false,
  ) {}

  /**
   * Replace the assigned set: new targets start at a random offset, dropped ones stop.
   * A target whose address changed (redeployed elsewhere) starts over with a check now:
   * its failure count was about the old address.
   */
  setTargets(targets: Target[]): void {
    if (this.stopped) return;
    const next = new Map(targets.map((t) => [t.id, t]));
    const moved = new Set<string>();
    for (const s of [...this.states.values()]) {
      const t = next.get(s.target.id);
      if (t && checkAddress(t) === s.address) continue;
      if (t) moved.add(t.id);
      clearTimeout(s.timer);
      if (s.lastOk === false) this.failingNow--;
      this.states.delete(s.target.id);
    }
    for (const [id, t] of next) {
      const s = this.states.get(id);
      if (s) {
        s.target = t;
        continue;
      }
      const fresh: TargetState = { target: t, address: checkAddress(t), running: false, failures: 0, successes: 0 };
      this.states.set(id, fresh);
      // New targets start at a random offset so checks spread out; a moved one is checked now.
      this.schedule(fresh, moved.has(id) ? 0 : Math.random() * this.opts.intervalMs);
    }
  }

  /**
   * New check timing (a config reload). A shorter interval reschedules the waiting checks
   * within it at once; a longer one takes effect as each check finishes.
   */
  setTiming(t: Pick<SchedulerOptions, 'intervalMs' | 'timeoutMs' | 'recheckDelayMs'>): void {
    const shorter = t.intervalMs < this.opts.intervalMs;
    this.opts = { ...this.opts, ...t };
    if (!shorter || this.stopped) return;
    for (const s of this.states.values()) {
      if (s.running) continue;
      clearTimeout(s.timer);
      this.schedule(s, Math.random() * t.intervalMs);
    }
  }

  /** Check this target now instead of at its next turn (an event says something happened to it). */
  checkNow(targetId: string): void {
    const s = this.states.get(targetId);
    if (!s || s.running || this.stopped) return;
    clearTimeout(s.timer);
    this.schedule(s, 0);
  }

  assigned(): string[] {
    return [...this.states.keys()];
  }

  checkUrl(t: Target): string {
    const o = this.opts.urlOverride;
    return o[t.id] ?? o['*'] ?? checkAddress(t);
  }

  /** The target's own address obeys its policy; a test override is operator configuration. */
  private guardOf(t: Target): Target['guard'] {
    const o = this.opts.urlOverride;
    return (o[t.id] ?? o['*']) ? undefined : t.guard;
  }

  private schedule(s: TargetState, delayMs: number): void {
    if (this.stopped) return;
    s.timer = setTimeout(() => void this.run(s), delayMs);
    s.timer.unref();
  }

  /** A slot for one check: undefined when one was free (no promise, no microtask per check), else a promise of one. */
  private acquire(): Promise<void> | undefined {
    if (this.inFlight < this.opts.concurrency) {
      this.inFlight++;
      return undefined;
    }
    return new Promise<void>((r) => this.waiting.push(r));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }

  private async run(s: TargetState): Promise<void> {
    if (this.stopped || this.states.get(s.target.id) !== s || s.running) return;
    s.running = true;
    const startedAt = this.now();
    try {
      const queued = this.acquire();
      if (queued) await queued;
      let outcome: Awaited<ReturnType<HttpProbe['get']>>;
      try {
        outcome = await this.probe.get(this.checkUrl(s.target), this.opts.timeoutMs, this.guardOf(s.target));
      } finally {
        this.release();
      }
      // Dropped or moved meanwhile: this result is about an address nobody asks about now.
      if (this.stopped || this.states.get(s.target.id) !== s) return;
      // The registry's heartbeat liveness is the second half of a check.
      const heartbeatDown = s.target.heartbeat === 'down';
      const ok = outcome.ok && !heartbeatDown;
      if (s.lastOk === false && ok) this.failingNow--;
      if (s.lastOk !== false && !ok) this.failingNow++;
      s.lastOk = ok;
      s.failures = ok ? 0 : s.failures + 1;
      s.successes = ok ? s.successes + 1 : 0;
      this.checksDone++;
      // Only a failure that would count toward a quorum needs the (cached) control check.
      let degraded = false;
      if (!ok && s.failures >= this.opts.failsToSuspect && this.failingNow >= this.states.size) {
        degraded = (await this.control.reachable()) === false;
      }
      if (this.stopped || this.states.get(s.target.id) !== s) return;
      this.queue({
        monitor_id: this.opts.monitorId,
        target_id: s.target.id,
        url: s.address,
        ok,
        at: new Date(this.now()).toISOString(),
        latency_ms: outcome.latency_ms,
        ...(outcome.status_code !== undefined ? { status_code: outcome.status_code } : {}),
        ...(outcome.error ? { error: outcome.error } : heartbeatDown ? { error: 'registry heartbeat down' } : {}),
        ...(s.target.heartbeat ? { heartbeat: s.target.heartbeat } : {}),
        consecutive_failures: s.failures,
        consecutive_successes: s.successes,
        monitor_degraded: degraded,
      });
    } catch (err) {
      this.log.warn({ err, target_id: s.target.id }, 'check failed to run');
    } finally {
      s.running = false;
      // A first failure is confirmed soon rather than a whole interval later, and a target under an incident is
      // watched closely, so that its return resolves the incident within moments.
      const confirming = s.lastOk === false && s.failures < this.opts.failsToSuspect;
      const soon = confirming || this.underIncident(s.target.id);
      const next = Math.max(0, this.opts.intervalMs - (this.now() - startedAt));
      const delay = soon ? Math.min(next, this.opts.recheckDelayMs) : next;
      if (this.states.get(s.target.id) === s) this.schedule(s, delay);
    }
  }

  /**
   * Checks finish one socket event at a time. Held for at most PUBLISH_BATCH_MS, the
   * observations of that span leave as one message (at 1,000 targets a message and a
   * flush per check were a sixth of a busy monitor's CPU); the quorum window is seconds,
   * so the delay changes no verdict.
   */
  private queue(o: Observation): void {
    if (this.pending.push(o) === 1) setTimeout(() => this.flush(), PUBLISH_BATCH_MS);
  }

  private flush(): void {
    const pending = this.pending;
    this.pending = [];
    for (let i = 0; i < pending.length; i += MAX_BATCH) {
      const batch = pending.length <= MAX_BATCH ? pending : pending.slice(i, i + MAX_BATCH);
      try {
        this.publish(batch);
      } catch (err) {
        this.log.warn({ err, observations: batch.length }, 'observations not published');
      }
    }
  }

  stop(): void {
    this.flush();
    this.stopped = true;
    for (const s of this.states.values()) clearTimeout(s.timer);
    this.states.clear();
    for (const w of this.waiting.splice(0)) w();
  }
}
