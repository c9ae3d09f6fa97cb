import Docker from 'dockerode';
import type { Logger } from '@droplet-mesh/udc-kit';
import type { Server } from '../domain/model.js';
import { MANAGED_LABEL, replicaRecordId, targetId } from '../domain/naming.js';
import type { Stores } from '../store/stores.js';
import { dockerOptions } from './engine-pool.js';

/** One Docker Engine event (the fields the restarter reads). */
interface EngineEvent {
  Type?: string;
  Action?: string;
  id?: string;
  time?: number;
  timeNano?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export interface CrashRestarterDeps {
  stores: Pick<Stores, 'servers' | 'releases' | 'lanes' | 'crashClaims'>;
  masterKey: Buffer;
  defaultHost?: string;
  logger: Logger;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  /** This replica (who claimed a restart). */
  ownerId: string;
  /** How often the list of servers to watch is refreshed. */
  refreshMs?: number;
  /** At most this many restarts of one container in CRASH_WINDOW_MS; then it is left to health-monitor. */
  maxRestarts?: number;
  /** Tests: a dockerode client per server instead of one built from its docker_host. */
  docker?: (server: Server) => Docker;
}

/** A graceful stop (SIGTERM or the image's stop signal, then `die` and `stop`) marks a container as stopped on purpose for this long. */
const STOP_MARK_MS = 120_000;
const CRASH_WINDOW_MS = 60_000;
const RECONNECT_MS = 1_000;
/** An engine that does not answer is tried again after 5 s, doubling up to a minute (one warning per failure streak step). */
const RETRY_MAX_MS = 60_000;
const SIGKILL = new Set(['9', 'SIGKILL', 'KILL']);

/**
 * Crash recovery from Docker events, not polls (issue 16, item 2). For every server it
 * follows the engine's `kill`/`die`/`stop` events of managed containers. A released app
 * container (one its service's current release lists) that dies without having been asked
 * to stop is started again at once and reported as `service.container_restarted`.
 *
 * "Asked to stop" is read from the engine itself, so it holds for every replica and every
 * operator: `docker stop` (what the deployer's drain, rollback, scale, undeploy and worker
 * switch use, and what `docker restart` does) sends the container's stop signal first and
 * ends with a `stop` event; a container removed by force is gone. A container killed
 * (SIGKILL, `docker kill`, the OOM killer) or whose process exits on its own gets only
 * `die` (after `kill` signal 9 for `docker kill`), and the engine's own restart policy
 * does not bring a `docker kill`ed container back. Besides, a container whose service
 * holds its lane lease (a deploy or undeploy is changing it) is left alone, and one
 * replica claims each death in KV, so replicas do not all restart the same container.
 * Hangs and network faults give no event: health-monitor's checks stay for those.
 */
export class CrashRestarter {
  private watchers = new Map<string, { key: string; stop: () => void }>();
  private stopMarks = new Map<string, number>();
  private restarts = new Map<string, number[]>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private d: CrashRestarterDeps) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(
      () => void this.refresh().catch((err) => this.d.logger.warn({ err }, 'crash restarter: could not list servers')),
      this.d.refreshMs ?? 30_000,
    );
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const w of this.watchers.values()) w.stop();
    this.watchers.clear();
  }

  /** Watch every server in the store (a changed docker_host or TLS material starts a new watch). */
  async refresh(): Promise<void> {
    if (this.stopped) return;
    const servers = await this.d.stores.servers.list();
    const seen = new Set<string>();
    for (const s of servers) {
      seen.add(s.id);
      const key = `${s.docker_host}|${s.tls_sealed ? JSON.stringify(s.tls_sealed) : ''}`;
      const w = this.watchers.get(s.id);
      if (w?.key === key) continue;
      w?.stop();
      this.watchers.set(s.id, { key, stop: this.watch(s) });
    }
    for (const [id, w] of this.watchers)
      if (!seen.has(id)) {
        w.stop();
        this.watchers.delete(id);
      }
  }

  private client(server: Server): Docker {
    return this.d.docker?.(server) ?? new Docker(dockerOptions(server, this.d.masterKey, this.d.defaultHost));
  }

  /** Follow one engine's events until stopped, reconnecting (from the last event seen) when the stream ends. */
  private watch(server: Server): () => void {
    let done = false;
    let stream: NodeJS.ReadableStream | undefined;
    let since: number | undefined;
    let retry: NodeJS.Timeout | undefined;
    let failures = 0;
    const connect = async () => {
      if (done) return;
      try {
        const docker = this.client(server);
        const s = (await docker.getEvents({
          ...(since ? { since } : {}),
          filters: { type: ['container'], event: ['kill', 'die', 'stop', 'start'], label: [`${MANAGED_LABEL}=true`] },
        })) as NodeJS.ReadableStream;
        if (done) {
          (s as unknown as { destroy?: () => void }).destroy?.();
          return;
        }
        stream = s;
        failures = 0;
        let buf = '';
        s.on('data', (chunk: Buffer) => {
          buf += String(chunk);
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            nl = buf.indexOf('\n');
            if (!line) continue;
            try {
              const e = JSON.parse(line) as EngineEvent;
              if (e.time) since = e.time;
              this.onEvent(server, docker, e);
            } catch {
              // not an event line
            }
          }
        });
        const again = () => {
          if (stream !== s || done) return;
          stream = undefined;
          retry = setTimeout(() => void connect(), RECONNECT_MS);
          retry.unref();
        };
        s.on('end', again);
        s.on('close', again);
        s.on('error', again);
      } catch (err) {
        const wait = Math.min(RETRY_MAX_MS, RECONNECT_MS * 5 * 2 ** failures++);
        this.d.logger.warn({ err, server_id: server.id, retry_in_ms: wait }, 'crash restarter: no event stream from this engine');
        retry = setTimeout(() => void connect(), wait);
        retry.unref();
      }
    };
    void connect();
    return () => {
      done = true;
      if (retry) clearTimeout(retry);
      (stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
      stream = undefined;
    };
  }

  private onEvent(server: Server, docker: Docker, e: EngineEvent): void {
    const id = e.Actor?.ID ?? e.id;
    if (!id || e.Type !== 'container') return;
    const attrs = e.Actor?.Attributes ?? {};
    const now = Date.now();
    for (const [k, at] of this.stopMarks) if (now - at > STOP_MARK_MS) this.stopMarks.delete(k);
    if (e.Action === 'kill') {
      if (!SIGKILL.has(attrs.signal ?? '')) this.stopMarks.set(id, now);
      return;
    }
    if (e.Action === 'stop') {
      this.stopMarks.set(id, now);
      return;
    }
    if (e.Action === 'start') {
      this.stopMarks.delete(id);
      return;
    }
    if (e.Action !== 'die') return;
    if (this.stopMarks.has(id)) return;
    void this.onDeath(server, docker, id, attrs, e).catch((err) =>
      this.d.logger.warn({ err, server_id: server.id, container_id: id }, 'crash restarter: could not handle a container that died'),
    );
  }

  private async onDeath(server: Server, docker: Docker, id: string, attrs: Record<string, string>, e: EngineEvent): Promise<void> {
    const diedAt = e.timeNano ? e.timeNano / 1e6 : (e.time ?? Date.now() / 1000) * 1000;
    const { 'mesh.project': project, 'mesh.service': service, 'mesh.environment': environment } = attrs;
    if (!project || !service || !environment) return;
    const target = targetId(project, service, environment);
    // Only what the current release runs (a deploy's new containers, drained old ones and leftovers are not ours to
    // revive), and only while no deploy or undeploy holds the service's lease (it decides what runs). Read at once.
    const c = docker.getContainer(id);
    const [release, lease, inspected] = await Promise.all([
      this.d.stores.releases.get(target),
      this.d.stores.lanes.lease(target),
      c.inspect().catch(() => undefined),
    ]);
    const placed = release?.containers.find((p) => p.server_id === server.id && p.container_id === id);
    if (!release || !placed || lease || !inspected) return;
    const recent = (this.restarts.get(id) ?? []).filter((t) => Date.now() - t < CRASH_WINDOW_MS);
    const base = {
      target_id: target,
      // The replica's own registry record (service-records.ts): what health-monitor checks and opens the incident on.
      record_id: replicaRecordId(target, release.containers.indexOf(placed)),
      deployment_id: release.deployment_id,
      server_id: server.id,
      container: placed.name,
      exit_code: Number(attrs.exitCode ?? NaN),
    };
    if (recent.length >= (this.d.maxRestarts ?? 5)) {
      this.d.emit('service.crash_loop', { ...base, restarts: recent.length, window_s: CRASH_WINDOW_MS / 1000 }, 'error');
      return;
    }
    // One replica handles each death.
    const claim = `${id.slice(0, 24)}-${e.timeNano ?? e.time ?? ''}`;
    if (
      !(await this.d.stores.crashClaims.create([claim], { container_id: id, owner: this.d.ownerId, claimed_at: new Date().toISOString() }))
    )
      return;
    setTimeout(() => void this.d.stores.crashClaims.purge(claim).catch(() => undefined), CRASH_WINDOW_MS).unref();
    const state = inspected.State;
    // Said before the restart, not after it: health-monitor opens its incident from this at once
    // (its checks would see the gap only at their next interval, or not at all).
    this.d.emit('service.container_died', { ...base, died_at: new Date(diedAt).toISOString(), oom_killed: state.OOMKilled }, 'warn');
    let by: 'deployer' | 'engine' = 'deployer';
    const startAt = Date.now();
    if (state.Running || state.Restarting) by = 'engine';
    else if (this.stopMarks.has(id)) return;
    else {
      try {
        await c.start();
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code === 404) return; // removed meanwhile
        if (code !== 304) throw err;
        by = 'engine';
      }
    }
    recent.push(Date.now());
    this.restarts.set(id, recent);
    const restartMs = Math.max(0, Math.round(Date.now() - diedAt));
    const engineStartMs = Date.now() - startAt;
    this.d.logger.warn({ ...base, restarted_by: by, restart_ms: restartMs }, 'an app container died and was started again');
    this.d.emit(
      'service.container_restarted',
      {
        ...base,
        died_at: new Date(diedAt).toISOString(),
        oom_killed: state.OOMKilled,
        restarted_by: by,
        restart_ms: restartMs,
        engine_start_ms: engineStartMs,
      },
      'warn',
    );
  }
}
