import { randomUUID } from 'node:crypto';
import type { Logger } from '@droplet-mesh/udc-kit';
import { Batcher } from './batcher.js';
import { ROUTE_NAME } from './domain/route-spec.js';
import type { Outcome, Reconciler } from './reconciler.js';
import type { KeyChange, KeyWatch } from './store/kv-watch.js';

export interface ReplicaSyncDeps {
  reconciler: Reconciler;
  watchRoutes: (onChange: (c: KeyChange) => void) => Promise<KeyWatch>;
  /** Names in the store, to catch up after a watch had to be reopened. */
  storedNames: () => Promise<string[]>;
  /** Domains whose shared certificate changed (keys `cert.<domain>`). */
  watchCertificates?: (onChange: (c: KeyChange) => void) => Promise<KeyWatch>;
  adoptCertificate: (domain: string) => Promise<unknown>;
  logger: Logger;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  replicaId: string;
  /** A burst of changes is applied once it has been quiet this long (at most 10x this after it began). */
  quietMs: number;
  reopenDelayMs?: number;
}

const CERT_KEY = /^cert\.(.+)$/;

/**
 * Keeps this replica converged on what other replicas write: a watch on the routes bucket
 * feeds changed names, in debounced batches, to the reconciler's normal coalesced path as
 * `converge` changes (which re-read the store and never write it). Certificates another
 * replica stored are installed here instead of being requested from the CA again.
 */
export class ReplicaSync {
  private routes: Batcher<KeyChange>;
  private certs: Batcher<string>;
  private watches: KeyWatch[] = [];
  private stopped = false;
  private timers = new Set<NodeJS.Timeout>();

  constructor(private d: ReplicaSyncDeps) {
    const onError = (err: unknown) => d.logger.error({ err }, 'replica sync batch failed');
    const maxWaitMs = d.quietMs * 10;
    this.routes = new Batcher({ quietMs: d.quietMs, maxWaitMs, held: true, handle: (b) => this.applyRoutes(b), onError });
    this.certs = new Batcher({ quietMs: d.quietMs, maxWaitMs, held: true, handle: (b) => this.adoptCertificates(b), onError });
  }

  /** Open the watches before the initial listing, so nothing written in between is missed. */
  async open(): Promise<void> {
    await this.openRoutes(false);
    if (this.d.watchCertificates) await this.openCertificates();
  }

  /** After the initial resync: apply what arrived meanwhile, and everything after. */
  release(): void {
    this.routes.release();
    this.certs.release();
  }

  /** Resolves when no batch is pending or running (tests). */
  async idle(): Promise<void> {
    await this.routes.idle();
    await this.certs.idle();
    await this.d.reconciler.idle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const w of this.watches.splice(0)) w.stop();
    await Promise.all([this.routes.stop(), this.certs.stop()]);
  }

  private async openRoutes(catchUp: boolean): Promise<void> {
    const w = await this.d.watchRoutes((c) => this.routes.add(c.key, c));
    this.watches.push(w);
    this.whenEnded(w, 'routes', () => this.openRoutes(true));
    if (catchUp) {
      // Changes made while the watch was down: compare every known name with the store.
      const names = new Set([...(await this.d.storedNames()), ...this.d.reconciler.routes.keys()]);
      for (const key of names) this.routes.add(key, { key, revision: Number.MAX_SAFE_INTEGER, deleted: false });
    }
  }

  private async openCertificates(): Promise<void> {
    const watch = this.d.watchCertificates as NonNullable<ReplicaSyncDeps['watchCertificates']>;
    const w = await watch((c) => {
      const m = CERT_KEY.exec(c.key);
      if (m && !c.deleted) this.certs.add(m[1], m[1]);
    });
    this.watches.push(w);
    this.whenEnded(w, 'certificates', () => this.openCertificates());
  }

  /** A watch that ends while we still run (NATS gone for good, stream recreated) is reopened. */
  private whenEnded(w: KeyWatch, what: string, reopen: () => Promise<void>): void {
    let attempt = 0;
    const retry = (err?: unknown) => {
      if (this.stopped) return;
      this.watches = this.watches.filter((x) => x !== w);
      const delay = Math.min(30_000, (this.d.reopenDelayMs ?? 1000) * 2 ** attempt++);
      this.d.logger.warn({ err, watch: what, retry_in_ms: delay }, 'store watch ended; reopening');
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (!this.stopped) reopen().catch(retry);
      }, delay);
      t.unref();
      this.timers.add(t);
    };
    w.done.then(() => retry(), retry);
  }

  /** Is the change newer than what this replica applied? (Its own writes are not.) */
  private isNews(c: KeyChange): boolean {
    if (!ROUTE_NAME.test(c.key)) return false;
    const applied = this.d.reconciler.routes.get(c.key);
    return c.deleted ? !!applied : !applied || c.revision > applied.revision;
  }

  private async applyRoutes(batch: KeyChange[]): Promise<void> {
    const names = batch.filter((c) => this.isNews(c)).map((c) => c.key);
    if (names.length === 0) return;
    const log = this.d.logger.child({ correlation_id: `converge-${randomUUID()}`, replica: this.d.replicaId });
    const before = new Map(names.map((n) => [n, this.d.reconciler.routes.get(n)?.record.domain]));
    // Submitted together, so the reconciler applies them as one round: one nginx -t, one reload.
    const outcomes = await Promise.all(names.map((name) => this.d.reconciler.submit({ kind: 'converge', name })));
    for (const o of outcomes) this.report(o, log, this.d.reconciler.routes.get(o.name)?.record.domain ?? before.get(o.name));
  }

  private report(o: Outcome, log: Logger, domain: string | undefined): void {
    const fields = { droplet_name: o.name, domain, action: 'route.converge' };
    if (!o.ok) {
      log.warn(
        { ...fields, result: 'failed', reason: o.reason, nginx_output: o.nginx_output },
        `could not apply another replica's change here: ${o.message}`,
      );
      this.d.emit(
        'route.failed',
        { name: o.name, domain, action: 'route.converge', reason: o.reason, message: o.message, replica: this.d.replicaId },
        'warn',
      );
    } else if (o.deleted) log.info({ ...fields, result: 'deleted' }, 'route deleted to follow the store');
    else if (o.status && o.changed)
      log.info({ ...fields, result: 'applied', revision: o.stored?.revision }, 'route applied from the store');
    else log.debug({ ...fields, result: 'unchanged' }, 'route already as stored');
  }

  private async adoptCertificates(domains: string[]): Promise<void> {
    await Promise.all(
      domains.map((domain) =>
        this.d
          .adoptCertificate(domain)
          .catch((err) =>
            this.d.logger.warn(
              { domain, action: 'cert.fetch', result: 'failed', reason: (err as Error).message },
              'could not install a shared certificate',
            ),
          ),
      ),
    );
  }
}
