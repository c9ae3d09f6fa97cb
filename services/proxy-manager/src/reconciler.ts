import type { Logger } from '@droplet-mesh/udc-kit';
import type { RouteRecord } from './domain/route-spec.js';
import type { ResolvedServer } from './domain/render.js';
import type { NginxController } from './nginx/nginx-controller.js';
import type { SiteChangeSet, SiteFiles } from './nginx/site-files.js';
import type { RouteStore, StoredRoute } from './store/route-store.js';
import type { UnresolvedUpstream } from './upstreams/resolve.js';
import type { HealthResult } from './upstreams/health.js';

export type Change =
  | { kind: 'upsert'; record: RouteRecord }
  | { kind: 'delete'; name: string }
  /**
   * Re-render from the stored record (DNS changed, a certificate arrived); no store write.
   * `reload`: reload even when the bytes are the same (new key material behind the same paths).
   */
  | { kind: 'refresh'; name: string; reload?: boolean }
  /**
   * Another replica changed the route in the store: read the desired state now and apply
   * it if its revision is newer than the one applied here. Never writes the store.
   */
  | { kind: 'converge'; name: string };

export interface RouteStatus {
  /**
   * serving: proxied to at least one address; no_upstream: answers 502; failed: the desired
   * revision is not on disk here (a previously applied revision, if any, keeps serving).
   */
  state: 'serving' | 'no_upstream' | 'failed';
  applied_revision?: number;
  applied_at?: string;
  servers: ResolvedServer[];
  unresolved: UnresolvedUpstream[];
  https: boolean;
  last_error?: { message: string; nginx_output?: string; at: string };
  health?: HealthResult;
}

export type Outcome =
  | { ok: true; name: string; stored?: StoredRoute; deleted?: boolean; status?: RouteStatus; changed: boolean }
  | { ok: false; name: string; reason: 'nginx_test' | 'reload' | 'store' | 'render' | 'not_found'; message: string; nginx_output?: string };

export interface Rendered {
  text: string;
  servers: ResolvedServer[];
  unresolved: UnresolvedUpstream[];
  https: boolean;
  /** The root location answers with a redirect: serving without any upstream. */
  redirects?: boolean;
  /** Upstreams whose members the Lua balancer serves (not in the file), by upstream name. */
  members?: Map<string, ResolvedServer[]>;
}

/** The Lua balancer's members (nginx/lua-balancer.ts); absent when upstreams are only in the files. */
export interface MemberSwitch {
  apply(changes: Map<string, ResolvedServer[] | null>, live?: boolean): Promise<Map<string, ResolvedServer[] | null>>;
}

const stateOf = (r: Rendered): RouteStatus['state'] => (r.servers.length > 0 || r.redirects ? 'serving' : 'no_upstream');

export interface ReconcilerDeps {
  sites: SiteFiles;
  nginx: NginxController;
  store: RouteStore;
  render: (record: RouteRecord) => Promise<Rendered>;
  logger: Logger;
  coalesceMs: number;
  dynamic?: MemberSwitch;
}

interface Pending {
  change: Change;
  resolve: (o: Outcome) => void;
}

/** One change of a round, resolved to what it does on disk. */
interface Work {
  p: Pending;
  name: string;
  /** Text to write; undefined removes the route's files. */
  rendered?: Rendered;
  /** For a converge: the stored state being applied (null: the route was deleted). */
  desired?: StoredRoute | null;
}

const nameOf = (c: Change) => (c.kind === 'upsert' ? c.record.name : c.name);

/**
 * Drives the files on disk and the running nginx to the desired routes. Changes that
 * arrive close together are applied as one round: one `nginx -t`, one reload, and a
 * separate answer per caller. A failed test restores every touched file byte for byte;
 * when a round of several changes fails, each is retried alone so only the bad ones fail.
 */
export class Reconciler {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private firstQueuedAt = 0;
  private running = false;
  private idleWaiters: Array<() => void> = [];
  readonly routes = new Map<string, StoredRoute>();
  readonly statuses = new Map<string, RouteStatus>();
  /** Last upstream health result per route (kept apart: a check runs before the first status exists). */
  private health = new Map<string, HealthResult>();
  /** Upstream names whose members this replica put into the balancer, per route. */
  private balanced = new Map<string, Set<string>>();
  rounds = 0;

  constructor(private d: ReconcilerDeps) {}

  /** Switch upstream members through the Lua balancer from now on (decided at start, once nginx -t said the module loads). */
  useMemberSwitch(sw: MemberSwitch): void {
    this.d.dynamic = sw;
  }

  submit(change: Change): Promise<Outcome> {
    return new Promise((resolve) => {
      if (this.queue.length === 0) this.firstQueuedAt = Date.now();
      this.queue.push({ change, resolve });
      this.schedule();
    });
  }

  /** Resolves when nothing is queued or running (tests and shutdown). */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private schedule(): void {
    if (this.running) return; // the running loop picks the queue up when it finishes
    if (this.timer) clearTimeout(this.timer);
    // Debounce: wait for the burst to end, but never more than 10 windows in total.
    const waited = Date.now() - this.firstQueuedAt;
    const delay = Math.max(0, Math.min(this.d.coalesceMs, this.d.coalesceMs * 10 - waited));
    this.timer = setTimeout(() => void this.drain(), delay);
  }

  private async drain(): Promise<void> {
    this.timer = undefined;
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        // One change per route per round, so per-route rollback is exact.
        const round: Pending[] = [];
        const names = new Set<string>();
        const rest: Pending[] = [];
        // A converge waits behind a local change of the same route (it re-reads the store
        // afterwards, so it costs nothing if that change won), and one converge per route suffices.
        const local = new Set(this.queue.filter((p) => p.change.kind !== 'converge').map((p) => nameOf(p.change)));
        const converging = new Map<string, Pending>();
        for (const p of this.queue) {
          const n = nameOf(p.change);
          if (p.change.kind === 'converge') {
            const first = converging.get(n);
            if (first) {
              // Same answer as the one already queued.
              const original = first.resolve;
              first.resolve = (o) => {
                original(o);
                p.resolve(o);
              };
              continue;
            }
            converging.set(n, p);
            if (local.has(n)) {
              rest.push(p);
              continue;
            }
          }
          if (names.has(n)) rest.push(p);
          else {
            names.add(n);
            round.push(p);
          }
        }
        this.queue = rest;
        await this.applyRound(round);
      }
    } finally {
      this.running = false;
      const w = this.idleWaiters.splice(0);
      for (const r of w) r();
    }
  }

  private async applyRound(round: Pending[]): Promise<void> {
    this.rounds++;
    const answers = new Map<Pending, Outcome>();
    const desired = new Map<Pending, StoredRoute | null>();
    try {
      await this.applyRoundInner(round, answers, desired);
    } catch (err) {
      this.d.logger.error({ err }, 'reconcile round failed');
      for (const p of round)
        if (!answers.has(p))
          answers.set(p, { ok: false, name: nameOf(p.change), reason: 'render', message: `reconcile failed: ${(err as Error).message}` });
    }
    for (const [p, d] of desired) {
      const o = answers.get(p);
      if (o && !o.ok) this.convergeFailed(nameOf(p.change), d, o);
    }
    for (const p of round) p.resolve(answers.get(p) ?? { ok: false, name: nameOf(p.change), reason: 'render', message: 'no outcome' });
  }

  /** What one change does on disk; undefined when it is already answered (nothing to do, or failed). */
  private async prepare(p: Pending, answers: Map<Pending, Outcome>, desired: Map<Pending, StoredRoute | null>): Promise<Work | undefined> {
    const c = p.change;
    const name = nameOf(c);
    if (c.kind === 'delete') return { p, name };
    let record: RouteRecord | undefined;
    let wanted: StoredRoute | undefined;
    if (c.kind === 'converge') {
      try {
        wanted = await this.d.store.get(name);
      } catch (err) {
        answers.set(p, { ok: false, name, reason: 'store', message: `cannot read the desired route: ${(err as Error).message}` });
        return undefined;
      }
      const applied = this.routes.get(name);
      if (!wanted) {
        if (!applied) {
          answers.set(p, { ok: true, name, deleted: false, changed: false });
          return undefined;
        }
        desired.set(p, null);
        return { p, name, desired: null };
      }
      if (applied && wanted.revision <= applied.revision) {
        answers.set(p, { ok: true, name, stored: applied, status: this.statuses.get(name), changed: false });
        return undefined;
      }
      desired.set(p, wanted);
      record = wanted.record;
    } else {
      record = c.kind === 'upsert' ? c.record : this.routes.get(name)?.record;
    }
    if (!record) {
      answers.set(p, { ok: false, name, reason: 'not_found', message: `no route '${name}'` });
      return undefined;
    }
    try {
      return { p, name, rendered: await this.d.render(record), desired: wanted };
    } catch (err) {
      answers.set(p, { ok: false, name, reason: 'render', message: (err as Error).message });
      return undefined;
    }
  }

  private async applyRoundInner(
    round: Pending[],
    answers: Map<Pending, Outcome>,
    desired: Map<Pending, StoredRoute | null>,
  ): Promise<void> {
    // Render everything first (DNS lookups and store reads run in parallel), then touch the disk.
    const prepared = await Promise.all(round.map((p) => this.prepare(p, answers, desired)));
    const work = prepared.filter((x): x is Work => !!x);
    if (work.length === 0) return;

    const cs = this.d.sites.changeSet();
    let changed = false;
    for (const w of work) changed = (await this.writeOne(cs, w)) || changed;
    // New key material behind unchanged paths: nginx only re-reads it on a reload.
    if (work.some((w) => w.p.change.kind === 'refresh' && w.p.change.reload)) changed = true;

    let accepted = work;
    if (changed) {
      const test = await this.d.nginx.test();
      if (!test.ok) {
        if (work.length === 1) {
          await cs.rollback();
          answers.set(work[0].p, {
            ok: false,
            name: work[0].name,
            reason: 'nginx_test',
            message: 'nginx -t refused the change; nothing was applied',
            nginx_output: test.output,
          });
          return;
        }
        accepted = await this.isolate(cs, work, answers);
        if (accepted.length === 0) return;
      }
    }

    // Record desired state only for local changes nginx accepted; a converge only follows the store.
    const previous = new Map(accepted.map((w) => [w.name, this.routes.get(w.name)]));
    const stored = new Map<Pending, StoredRoute | undefined>();
    await Promise.all(
      accepted.map(async (w) => {
        const c = w.p.change;
        try {
          if (c.kind === 'upsert') stored.set(w.p, { record: c.record, revision: await this.d.store.put(c.record) });
          else if (c.kind === 'delete') await this.d.store.delete(c.name);
          else if (c.kind === 'converge') stored.set(w.p, w.desired ?? undefined);
          else stored.set(w.p, this.routes.get(c.name));
        } catch (err) {
          await cs.rollbackRoute(w.name);
          answers.set(w.p, { ok: false, name: w.name, reason: 'store', message: `cannot record the route: ${(err as Error).message}` });
        }
      }),
    );
    accepted = accepted.filter((w) => !answers.has(w.p));

    // New members go to the balancer before a reload (the new workers find them there);
    // members of upstreams that went away are dropped once the files no longer name them.
    const sets = new Map<string, ResolvedServer[] | null>();
    const drops = new Map<string, ResolvedServer[] | null>();
    for (const w of accepted) {
      const after = w.rendered?.members ?? new Map<string, ResolvedServer[]>();
      for (const [n, servers] of after) sets.set(n, servers);
      for (const n of this.balanced.get(w.name) ?? []) if (!after.has(n)) drops.set(n, null);
    }
    let undo: Map<string, ResolvedServer[] | null> | undefined;
    if (this.d.dynamic && sets.size > 0) {
      try {
        undo = await this.d.dynamic.apply(sets);
      } catch (err) {
        await cs.rollback();
        await this.restoreStore(
          accepted.filter((w) => w.p.change.kind !== 'converge').map((w) => w.name),
          previous,
        );
        for (const w of accepted)
          answers.set(w.p, {
            ok: false,
            name: w.name,
            reason: 'reload',
            message: `nginx did not take the new upstream members (${(err as Error).message}); the previous ones keep serving`,
          });
        return;
      }
    }

    if (changed) {
      const reload = await this.d.nginx.reload();
      if (!reload.ok) {
        if (undo) await this.d.dynamic?.apply(undo).catch((err) => this.d.logger.error({ err }, 'could not restore upstream members'));
        await cs.rollback();
        await this.restoreStore(
          accepted.filter((w) => w.p.change.kind !== 'converge').map((w) => w.name),
          previous,
        );
        for (const w of accepted)
          answers.set(w.p, {
            ok: false,
            name: w.name,
            reason: 'reload',
            message: 'nginx did not take the new configuration; the previous one keeps serving',
            nginx_output: reload.output,
          });
        return;
      }
    }

    if (this.d.dynamic && drops.size > 0)
      await this.d.dynamic.apply(drops).catch((err) => this.d.logger.warn({ err }, 'could not drop the members of removed upstreams'));
    for (const w of accepted) {
      const names = [...(w.rendered?.members?.keys() ?? [])];
      if (names.length > 0) this.balanced.set(w.name, new Set(names));
      else this.balanced.delete(w.name);
    }

    const at = new Date().toISOString();
    for (const w of accepted) {
      const name = w.name;
      if (!w.rendered) {
        const existed = this.routes.delete(name);
        this.statuses.delete(name);
        this.health.delete(name);
        answers.set(w.p, { ok: true, name, deleted: existed, changed });
        continue;
      }
      const s = stored.get(w.p);
      if (s) this.routes.set(name, s);
      const r = w.rendered;
      const status: RouteStatus = {
        state: stateOf(r),
        applied_revision: s?.revision,
        applied_at: at,
        servers: r.servers,
        unresolved: r.unresolved,
        https: r.https,
        health: this.health.get(name),
      };
      this.statuses.set(name, status);
      answers.set(w.p, { ok: true, name, stored: s, status, changed });
    }
  }

  private async writeOne(cs: SiteChangeSet, w: Work): Promise<boolean> {
    return w.rendered ? cs.write(w.name, w.rendered.text) : cs.remove(w.name);
  }

  /** The round failed `nginx -t`: retry each change on its own and keep the good ones. */
  private async isolate(cs: SiteChangeSet, work: Work[], answers: Map<Pending, Outcome>): Promise<Work[]> {
    await cs.rollback();
    const ok: Work[] = [];
    for (const w of work) {
      await this.writeOne(cs, w);
      const t = await this.d.nginx.test();
      if (t.ok) ok.push(w);
      else {
        await cs.rollbackRoute(w.name);
        answers.set(w.p, {
          ok: false,
          name: w.name,
          reason: 'nginx_test',
          message: 'nginx -t refused the change; nothing was applied',
          nginx_output: t.output,
        });
      }
    }
    return ok;
  }

  /**
   * A change made by another replica could not be applied here. This replica still knows
   * the desired route (so GET shows it and the same revision is not retried in a loop),
   * marks it failed with the reason, and whatever it applied before keeps serving.
   */
  private convergeFailed(name: string, desired: StoredRoute | null, o: Extract<Outcome, { ok: false }>): void {
    if (desired) this.routes.set(name, desired);
    const prev = this.statuses.get(name);
    this.statuses.set(name, {
      ...(prev ?? { servers: [], unresolved: [], https: false }),
      state: 'failed',
      last_error: { message: o.message, nginx_output: o.nginx_output, at: new Date().toISOString() },
    });
  }

  private async restoreStore(names: string[], previous: Map<string, StoredRoute | undefined>): Promise<void> {
    for (const n of names) {
      const prev = previous.get(n);
      try {
        if (prev) await this.d.store.put(prev.record);
        else await this.d.store.delete(n);
      } catch (err) {
        this.d.logger.error({ err, droplet_name: n }, 'could not restore the stored route after a failed reload');
      }
    }
  }

  /**
   * Start-up: make the disk match the store (a lost or hand-edited file is put back, a
   * file without a stored route is removed). A stored route that fails `nginx -t` is
   * left out and marked failed rather than keeping nginx from starting.
   */
  async resync(): Promise<{ rendered: number; removed: number; failed: string[] }> {
    const stored = await this.d.store.list();
    this.routes.clear();
    for (const s of stored) this.routes.set(s.record.name, s);
    const cs = this.d.sites.changeSet();
    const wanted = new Set(stored.map((s) => s.record.name));
    let removed = 0;
    for (const n of await this.d.sites.presentNames()) {
      if (!wanted.has(n)) {
        await cs.remove(n);
        removed++;
      }
    }
    const rendered = new Map<string, Rendered>();
    const failed: string[] = [];
    await Promise.all(
      stored.map(async (s) => {
        try {
          rendered.set(s.record.name, await this.d.render(s.record));
        } catch (err) {
          failed.push(s.record.name);
          this.fail(s.record.name, (err as Error).message);
        }
      }),
    );
    for (const [name, r] of rendered) await cs.write(name, r.text);
    for (const n of failed) await cs.remove(n);
    // Into the snapshot nginx loads when it starts (it is not running yet, or reloads next).
    if (this.d.dynamic) {
      const all = new Map<string, ResolvedServer[] | null>();
      for (const [name, r] of rendered) {
        for (const [n, servers] of r.members ?? []) all.set(n, servers);
        if (r.members?.size) this.balanced.set(name, new Set(r.members.keys()));
      }
      await this.d.dynamic.apply(all, false);
    }
    let test = await this.d.nginx.test();
    if (!test.ok) {
      // Find the culprits one by one from an empty set of routes.
      for (const n of rendered.keys()) await cs.remove(n);
      for (const [name, r] of rendered) {
        await cs.write(name, r.text);
        const t = await this.d.nginx.test();
        if (!t.ok) {
          await cs.remove(name);
          rendered.delete(name);
          failed.push(name);
          this.fail(name, 'nginx -t refused the stored route at start', t.output);
        }
      }
      test = await this.d.nginx.test();
      if (!test.ok) throw new Error(`nginx configuration is invalid even without routes: ${test.output}`);
    }
    const at = new Date().toISOString();
    for (const [name, r] of rendered) {
      this.statuses.set(name, {
        state: stateOf(r),
        applied_revision: this.routes.get(name)?.revision,
        applied_at: at,
        servers: r.servers,
        unresolved: r.unresolved,
        https: r.https,
      });
    }
    return { rendered: rendered.size, removed, failed };
  }

  private fail(name: string, message: string, nginxOutput?: string): void {
    this.statuses.set(name, {
      state: 'failed',
      servers: [],
      unresolved: [],
      https: false,
      last_error: { message, nginx_output: nginxOutput, at: new Date().toISOString() },
    });
  }

  /** Remember why the last attempt for a route failed (shown by GET /proxies/{name}). */
  noteFailure(name: string, message: string, nginxOutput?: string): void {
    const s = this.statuses.get(name);
    if (s) s.last_error = { message, nginx_output: nginxOutput, at: new Date().toISOString() };
  }

  setHealth(name: string, health: HealthResult): void {
    this.health.set(name, health);
    const s = this.statuses.get(name);
    if (s) s.health = health;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
