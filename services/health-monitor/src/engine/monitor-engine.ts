import type { Bus, MessageReply } from '@droplet-mesh/udc-kit';
import type { Logger } from 'pino';
import { quorumWindowMs, type Config } from '../config.js';
import { ControlCheck } from '../checks/control-check.js';
import { CheckScheduler } from '../checks/check-scheduler.js';
import { UndiciProbe, type HttpProbe } from '../checks/http-checker.js';
import { Membership, type MemberRecord } from '../cluster/membership.js';
import { assignMonitors } from '../domain/rendezvous.js';
import { checkAddress, type Observation, type Target } from '../domain/types.js';
import type { Notifier } from '../notify/notifier.js';
import type { DigestSummary } from '../notify/notification.js';
import { IncidentStore } from '../store/incident-store.js';
import { KvLease } from '../store/lease.js';
import { TargetSeenStore } from '../store/target-seen-store.js';
import { followContainerEvents } from '../targets/container-events.js';
import { followRecordEvents } from '../targets/record-events.js';
import { TargetDirectory, type TargetChange } from '../targets/target-directory.js';
import type { TargetSource } from '../targets/target-source.js';
import { DigestScheduler } from './digest.js';
import { Evaluator } from './evaluator.js';
import { ObservationBoard } from './observation-board.js';
import { IncidentActions } from './incident-actions.js';
import { RecoveryWorker, type RecoveryRequest } from './recovery-worker.js';

/** Each message: a JSON array of one monitor's observations (see CheckScheduler.queue). */
export const OBSERVATIONS_SUBJECT = 'health-monitor.observations';
export const BUCKETS = {
  members: 'health-monitor-members',
  incidents: 'health-monitor-incidents',
  leases: 'health-monitor-leases',
  targets: 'health-monitor-targets',
} as const;
/** Housekeeping only: live members and leases are judged by when this monitor saw them change (its monotonic clock). */
const GC_TTL_MS = 24 * 3600_000;
/** The registry announces removals here (udc-kit event of the registry droplet). */
const DEREGISTERED_SUBJECT = 'registry.droplet.deregistered';
/** A registry listing can be this old (the registry client caches lists for 5 s), with margin. */
const LIST_STALENESS_MS = 10_000;

export interface EngineDeps {
  config: Config;
  bus: Bus;
  /**
   * Observations go out and come in on a connection of their own that does not echo this
   * monitor's back to it: each of ours is applied here directly, without a NATS round trip
   * and a parse (a tenth of a busy monitor's CPU went to reading its own observations back).
   */
  observationBus: Bus;
  log: Logger;
  selfUrl: string;
  targetSource: TargetSource;
  notifier: Notifier;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  send: (req: RecoveryRequest) => Promise<MessageReply>;
  probe?: HttpProbe;
  now?: () => number;
}

/** One monitor replica: membership, its share of the checks, verdicts, recovery and digests. */
export class MonitorEngine {
  readonly monitorId: string;
  readonly board = new ObservationBoard();
  incidents!: IncidentStore;
  /** Acknowledge, silence, recover by hand (the routes' way in). */
  actions!: IncidentActions;
  private seen!: TargetSeenStore;
  private membership!: Membership;
  private scheduler!: CheckScheduler;
  private evaluator!: Evaluator;
  private recovery!: RecoveryWorker;
  private digest?: DigestScheduler;
  private probe: HttpProbe;
  private subs: Array<ReturnType<Bus['nc']['subscribe']>> = [];
  private timers: NodeJS.Timeout[] = [];
  private directory: TargetDirectory;
  private sweep?: Promise<void>;
  private sweepAgain = false;
  private stopped = false;
  private assignments = new Map<string, string[]>();
  private ready = false;
  private now: () => number;

  constructor(private d: EngineDeps) {
    this.monitorId = d.config.MONITOR_ID;
    this.probe = d.probe ?? new UndiciProbe();
    this.now = d.now ?? Date.now;
    const c = d.config;
    this.directory = new TargetDirectory(d.targetSource, (changes) => this.onTargetsChanged(changes), {
      listStalenessMs: LIST_STALENESS_MS,
      hintIntervalMs: c.CHECK_INTERVAL_MS,
      readTimeoutMs: Math.max(1000, c.CHECK_TIMEOUT_MS),
      now: this.now,
    });
  }

  get k(): number {
    return this.d.config.MONITORS_PER_TARGET;
  }

  isReady(): boolean {
    return this.ready;
  }

  async start(): Promise<void> {
    const { config: c, bus, log } = this.d;
    const [membersKv, incidentsKv, leasesKv, targetsKv] = await Promise.all([
      bus.kv(BUCKETS.members, { history: 1, ttlMs: GC_TTL_MS }),
      bus.kv(BUCKETS.incidents, { history: 5 }),
      bus.kv(BUCKETS.leases, { history: 1, ttlMs: GC_TTL_MS }),
      bus.kv(BUCKETS.targets, { history: 1 }),
    ]);
    this.incidents = new IncidentStore(incidentsKv, log, {
      retentionMs: c.INCIDENT_RETENTION_DAYS * 24 * 3600_000,
      maxResolved: c.INCIDENT_MAX_RESOLVED,
      now: this.now,
    });
    this.seen = new TargetSeenStore(targetsKv, log);
    await Promise.all([this.incidents.start(), this.seen.start()]);
    await this.incidents.prune().catch((err) => log.warn({ err }, 'could not prune resolved incidents'));

    const self: MemberRecord = { id: this.monitorId, url: this.d.selfUrl, started_at: new Date(this.now()).toISOString() };
    this.membership = new Membership(membersKv, self, { heartbeatMs: c.MEMBER_HEARTBEAT_MS, ttlMs: c.MEMBER_TTL_MS }, log);
    const control = new ControlCheck(
      () => {
        const urls = [...c.CONTROL_CHECK_URLS, ...this.membership.peerUrls()];
        const all = c.CHECK_URL_OVERRIDE_FOR_TESTS['*'];
        return all ? urls.map(() => all) : urls;
      },
      this.probe,
      c.CHECK_TIMEOUT_MS,
      Math.max(200, c.CHECK_INTERVAL_MS / 2),
      this.now,
    );
    this.scheduler = new CheckScheduler(
      {
        monitorId: this.monitorId,
        intervalMs: c.CHECK_INTERVAL_MS,
        timeoutMs: c.CHECK_TIMEOUT_MS,
        recheckDelayMs: c.RECHECK_DELAY_MS,
        failsToSuspect: c.FAILS_TO_SUSPECT,
        concurrency: c.CHECK_CONCURRENCY,
        urlOverride: c.CHECK_URL_OVERRIDE_FOR_TESTS,
      },
      this.probe,
      control,
      (batch) => {
        this.d.observationBus.publishJson(OBSERVATIONS_SUBJECT, batch);
        for (const o of batch) this.onObservation(o);
      },
      log,
      this.now,
      (id) => {
        const open = this.incidents.openFor(id);
        return !!open && open.status !== 'resolved';
      },
    );
    this.evaluator = new Evaluator({
      monitorId: this.monitorId,
      board: this.board,
      store: this.incidents,
      notifier: this.d.notifier,
      assignment: (id) => this.assignment(id),
      target: (id) => this.directory.get(id),
      reread: (id) => this.directory.reread(id),
      emit: this.d.emit,
      params: { windowMs: quorumWindowMs(c), failsToSuspect: c.FAILS_TO_SUSPECT, oksToRecover: c.OKS_TO_RECOVER },
      log,
      now: this.now,
    });
    this.actions = new IncidentActions({
      monitorId: this.monitorId,
      store: this.incidents,
      target: (id) => this.directory.get(id),
      send: this.d.send,
      emit: this.d.emit,
      requestTimeoutMs: c.RECOVERY_TIMEOUT_MS,
      log,
      now: this.now,
    });
    this.d.notifier.setHold((n) => this.actions.hold(n));
    this.recovery = new RecoveryWorker({
      monitorId: this.monitorId,
      store: this.incidents,
      lease: new KvLease(leasesKv, this.monitorId, c.LEASE_TTL_MS),
      notifier: this.d.notifier,
      target: (id) => this.directory.get(id),
      reread: (id) => this.directory.reread(id),
      resolveDeparted: (id) => this.evaluator.resolveDeparted(id),
      send: this.d.send,
      emit: this.d.emit,
      params: { maxAttemptsPerStep: c.RECOVERY_MAX_ATTEMPTS, backoffMs: c.RECOVERY_BACKOFF_MS, backoffMaxMs: c.RECOVERY_BACKOFF_MAX_MS },
      requestTimeoutMs: c.RECOVERY_TIMEOUT_MS,
      tickMs: Math.max(100, Math.min(1000, Math.floor(c.LEASE_TTL_MS / 3))),
      log,
      now: this.now,
    });

    this.subs.push(
      this.d.observationBus.nc.subscribe(OBSERVATIONS_SUBJECT, {
        callback: (err, msg) => {
          if (err) return;
          let batch: unknown;
          try {
            batch = msg.json();
          } catch {
            return;
          }
          if (!Array.isArray(batch)) return;
          for (const o of batch as Observation[])
            if (typeof o?.target_id === 'string' && typeof o.monitor_id === 'string' && typeof o.url === 'string') this.onObservation(o);
        },
      }),
      bus.nc.subscribe(DEREGISTERED_SUBJECT, {
        callback: (err, msg) => {
          if (err) return;
          let id: unknown;
          try {
            id = msg.json<{ droplet?: { id?: unknown } }>().droplet?.id;
          } catch {
            return;
          }
          if (typeof id === 'string' && (this.directory.has(id) || this.incidents.openFor(id)))
            void this.directory.reread(id).then(() => this.resolveDepartedIncidents());
        },
      }),
    );

    // A record that changes (a redeploy) is read at once, not at the next listing.
    this.subs.push(...followRecordEvents(bus.nc, (id) => this.directory.reread(id)));
    // A container the deployer saw die is an incident at once; its restart is checked at once.
    this.subs.push(
      ...followContainerEvents(bus.nc, {
        died: (e) => {
          void this.evaluator
            .openFromDeath(e, c.RECOVERY_BACKOFF_MS)
            .catch((err) => log.warn({ err, target_id: e.target_id }, 'could not open an incident from a container death'));
          this.scheduler.checkNow(e.target_id);
        },
        restarted: (e) => {
          void this.evaluator
            .noteRestart(e)
            .catch((err) => log.warn({ err, target_id: e.target_id }, 'could not record a container restart'));
          this.scheduler.checkNow(e.target_id);
        },
        crashLoop: (e) => {
          void this.evaluator
            .escalateCrashLoop(e)
            .catch((err) => log.warn({ err, target_id: e.target_id }, 'could not escalate a crash loop'));
        },
      }),
    );

    this.membership.onChange(() => this.rebalance());
    await this.membership.start();
    await this.refreshTargets();
    this.every(c.TARGET_REFRESH_MS, () => this.refreshTargets());
    // Verdicts also move with time (observations going stale), not only with new ones.
    this.every(c.CHECK_INTERVAL_MS, async () => {
      for (const id of this.scheduler.assigned()) await this.evaluator.evaluate(id);
    });
    this.every(c.INCIDENT_PRUNE_INTERVAL_MS, async () => void (await this.incidents.prune()));
    this.recovery.start();
    this.digest = new DigestScheduler(leasesKv, c.DIGEST_INTERVAL_MIN * 60_000, () => this.digestSummary(), this.d.notifier, log, this.now);
    this.digest.start();
    this.ready = true;
    log.info({ monitor_id: this.monitorId, members: this.membership.members(), targets: this.directory.size }, 'health monitor running');
  }

  /** One check's result, a peer's or our own. */
  private onObservation(o: Observation): void {
    this.board.add(o, this.now());
    // A peer checking another address than ours: one of us has an old record.
    this.directory.hint(o.target_id, o.url);
    if (!this.directory.has(o.target_id)) return;
    this.seen.ensure(o.target_id, Date.parse(o.at) || this.now());
    // A good check cannot call a target down, and with no incident open there is nothing it could resolve
    // (the periodic evaluation still weighs every target each interval).
    if (!o.ok || this.incidents.openFor(o.target_id)) void this.evaluator.evaluate(o.target_id);
  }

  /**
   * A config reload: the scheduler takes the new check timing and the evaluator the quorum
   * window that follows from it (3 intervals unless QUORUM_WINDOW_MS), or a longer interval
   * would leave every observation outside the window.
   */
  applyTiming(c: Config): void {
    this.d.config = c;
    this.scheduler?.setTiming({ intervalMs: c.CHECK_INTERVAL_MS, timeoutMs: c.CHECK_TIMEOUT_MS, recheckDelayMs: c.RECHECK_DELAY_MS });
    this.evaluator?.setWindow(quorumWindowMs(c));
  }

  private every(ms: number, fn: () => Promise<void> | void): void {
    const t = setInterval(() => {
      Promise.resolve(fn()).catch((err) => this.d.log.warn({ err }, 'periodic task failed'));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  private async refreshTargets(): Promise<void> {
    await this.directory.refresh();
    this.board.retain(new Set(this.directory.all().map((t) => t.id)));
    await this.resolveDepartedIncidents();
  }

  private onTargetsChanged(changes: TargetChange[]): void {
    for (const { id, before, after } of changes) {
      if (!after) this.d.log.info({ target_id: id }, 'target removed');
      else if (before && checkAddress(before) !== checkAddress(after)) {
        // What was seen of the old address says nothing about the new one.
        this.board.forgetLatest(id);
        this.d.log.info({ target_id: id, from: checkAddress(before), to: checkAddress(after) }, 'target moved');
      }
    }
    this.rebalance();
    if (changes.some((c) => !c.after)) void this.resolveDepartedIncidents();
  }

  /** Open incidents of targets we no longer know: confirm with a fresh read, then resolve them. */
  private async resolveDepartedIncidents(): Promise<void> {
    if (!this.evaluator) return;
    if (this.sweep) {
      this.sweepAgain = true;
      return this.sweep;
    }
    this.sweep = (async () => {
      do {
        this.sweepAgain = false;
        for (const i of this.incidents.openIncidents()) {
          if (i.status === 'resolved' || this.directory.has(i.target_id)) continue;
          try {
            if ((await this.directory.reread(i.target_id)).kind === 'gone') await this.evaluator.resolveDeparted(i.target_id);
          } catch (err) {
            this.d.log.warn({ err, incident_id: i.id }, 'could not resolve the incident of a departed target');
          }
        }
      } while (this.sweepAgain && !this.stopped);
    })().finally(() => (this.sweep = undefined));
    return this.sweep;
  }

  /** Recompute who checks what, and hand this monitor's share to the scheduler. */
  private rebalance(): void {
    if (!this.scheduler) return;
    const members = this.membership.members();
    const k = this.d.config.MONITORS_PER_TARGET;
    const next = new Map<string, string[]>();
    const mine: Target[] = [];
    for (const t of this.directory.all()) {
      const assigned = assignMonitors(t.id, members, k);
      next.set(t.id, assigned);
      if (assigned.includes(this.monitorId)) mine.push(t);
    }
    this.assignments = next;
    this.scheduler.setTargets(mine);
  }

  // ---- read side, for the routes ----

  assignment(targetId: string): string[] {
    return this.assignments.get(targetId) ?? [];
  }

  members(): MemberRecord[] {
    return this.membership.records();
  }

  targets(): Target[] {
    return this.directory.all().sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  target(id: string): Target | undefined {
    return this.directory.get(id);
  }

  firstSeenAt(id: string): number | undefined {
    return this.seen.firstSeenAt(id);
  }

  checksDone(): number {
    return this.scheduler?.checksDone ?? 0;
  }

  targetStatus(id: string): 'up' | 'down' | 'unknown' {
    const open = this.incidents.openFor(id);
    if (open && open.status !== 'resolved') return 'down';
    return this.board.lastCheck(id) || this.seen.firstSeenAt(id) !== undefined ? 'up' : 'unknown';
  }

  digestSummary(): DigestSummary {
    const targets = this.targets();
    const statuses = targets.map((t) => this.targetStatus(t.id));
    return {
      at: new Date(this.now()).toISOString(),
      targets: targets.length,
      up: statuses.filter((s) => s === 'up').length,
      down: statuses.filter((s) => s === 'down').length,
      unknown: statuses.filter((s) => s === 'unknown').length,
      open_incidents: this.incidents
        .openIncidents()
        .filter((i) => i.status !== 'resolved')
        .map((i) => ({ id: i.id, target_id: i.target_id, status: i.status, opened_at: i.opened_at })),
      monitors: this.membership.members(),
    };
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.digest?.stop();
    this.recovery?.stop();
    this.scheduler?.stop();
    for (const sub of this.subs) sub.unsubscribe();
    await this.membership?.stop();
    this.incidents?.stop();
    this.seen?.stop();
    await this.d.notifier.settle(3000);
    await this.probe.close();
  }
}
