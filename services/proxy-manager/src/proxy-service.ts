import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import {
  AddressRefused,
  Conflict,
  DependencyUnavailable,
  fieldErrors,
  InternalError,
  InvalidRequest,
  NotFound,
  RateLimited,
  Unprocessable,
  type AddressPolicy,
  type Logger,
} from '@droplet-mesh/udc-kit';
import type { RouteRecord, RouteSpec } from './domain/route-spec.js';
import type { Outcome, Reconciler, RouteStatus } from './reconciler.js';
import type { StoredRoute } from './store/route-store.js';
import { probeRoute, type HealthProbe } from './upstreams/health.js';
import type { NginxController } from './nginx/nginx-controller.js';
import { AcmeFailed, type Certificates } from './acme/certificates.js';
import { BudgetExceeded } from './acme/budget.js';
import type { CertInfo } from './acme/cert-store.js';
import type { UploadedCerts } from './acme/uploaded-certs.js';
import { checkUpload, covers, UploadRefused, type CheckedUpload, type UploadedCertInfo } from './acme/upload-check.js';

export interface OperationContext {
  log: Logger;
  correlationId: string;
}

export interface ProxyServiceDeps {
  reconciler: Reconciler;
  nginx: NginxController;
  probe: HealthProbe;
  /** Which upstream addresses are allowed (checked before any probe or write). */
  policy?: AddressPolicy;
  /** How upstream names are resolved for the policy (the same lookup rendering uses). */
  lookup?: (host: string) => Promise<string[]>;
  certificates: Certificates;
  /** Operators' own certificates; a valid one covering a domain wins over ACME. */
  uploads?: UploadedCerts;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  recordProof: (action: string, detail?: unknown) => void;
  logger: Logger;
  configDirs: string[];
  renewBeforeDays: number;
  now?: () => number;
}

export interface AppliedRoute extends RouteRecord {
  /** The revision serving on this replica's nginx (null: none, e.g. it failed here). */
  applied_revision: number | null;
  /** The revision of the desired route in the store. */
  desired_revision: number;
  status: RouteStatus | null;
  certificate:
    | (Pick<CertInfo, 'issuer' | 'not_after' | 'not_before' | 'subject'> & {
        days_left: number;
        /** acme: obtained over ACME; uploaded: an operator's certificate (`id` in /certificates). */
        source: 'acme' | 'uploaded';
        id?: string;
      })
    | null;
  ssl_pending?: boolean;
}

const DAY = 86_400_000;

/** The operations behind the HTTP routes and the message handlers; knows nothing of Express. */
export class ProxyService {
  private domainClaims = new Map<string, string>();
  private sslPending = new Set<string>();
  private now: () => number;

  constructor(private d: ProxyServiceDeps) {
    this.now = d.now ?? Date.now;
  }

  private async view(stored: StoredRoute): Promise<AppliedRoute> {
    const r = stored.record;
    const uploaded = r.enable_ssl ? this.d.uploads?.findFor(r.domain)?.info : undefined;
    const cert = uploaded ?? (r.enable_ssl ? await this.d.certificates.read(r.domain) : undefined);
    const status = this.d.reconciler.statuses.get(r.name);
    return {
      ...r,
      applied_revision: status?.applied_revision ?? null,
      desired_revision: stored.revision,
      status: status ?? null,
      certificate: cert
        ? {
            issuer: cert.issuer,
            subject: cert.subject,
            not_before: cert.not_before,
            not_after: cert.not_after,
            days_left: Math.floor((Date.parse(cert.not_after) - this.now()) / DAY),
            source: uploaded ? 'uploaded' : 'acme',
            ...(uploaded ? { id: uploaded.id } : {}),
          }
        : null,
      ...(this.sslPending.has(r.name) ? { ssl_pending: true } : {}),
    };
  }

  private fail(
    op: OperationContext,
    name: string,
    domain: string | undefined,
    action: string,
    outcome: Extract<Outcome, { ok: false }>,
  ): never {
    op.log.warn(
      { droplet_name: name, domain, action, result: 'failed', reason: outcome.reason, nginx_output: outcome.nginx_output },
      outcome.message,
    );
    this.d.reconciler.noteFailure(name, outcome.message, outcome.nginx_output);
    this.d.emit(
      'route.failed',
      { name, domain, action, reason: outcome.reason, message: outcome.message, correlation_id: op.correlationId },
      'warn',
    );
    const details = { reason: outcome.reason, ...(outcome.nginx_output ? { nginx_output: outcome.nginx_output } : {}) };
    if (outcome.reason === 'nginx_test' || outcome.reason === 'reload') throw new Unprocessable(outcome.message, details);
    if (outcome.reason === 'store') throw new DependencyUnavailable(outcome.message, details);
    if (outcome.reason === 'not_found') throw new NotFound(outcome.message);
    throw new InternalError(outcome.message, { trace_id: op.correlationId });
  }

  /** Every upstream (a name by what it resolves to) must pass the address policy: a 400 otherwise, nothing probed. */
  private async checkUpstreams(name: string, spec: RouteSpec, op: OperationContext): Promise<void> {
    const policy = this.d.policy;
    if (!policy) return;
    const all = [
      ...spec.upstreams.map((u, i) => ({ u, field: `upstreams.${i}` })),
      ...spec.paths.flatMap((p, j) => (p.upstreams ?? []).map((u, i) => ({ u, field: `paths.${j}.upstreams.${i}` }))),
    ];
    for (const { u, field } of all) {
      const v = await policy.check(u.host, u.port, this.d.lookup);
      if (v.ok) continue;
      op.log.warn(
        { droplet_name: name, domain: spec.domain, action: 'route.upsert', result: 'refused', host: u.host, port: u.port, rule: v.reason },
        'upstream address refused by the address policy',
      );
      throw new AddressRefused(u.host, u.port, v.reason ?? 'refused', field);
    }
  }

  async upsert(name: string, spec: RouteSpec, op: OperationContext): Promise<{ created: boolean; route: AppliedRoute }> {
    const action = 'route.upsert';
    await this.checkUpstreams(name, spec, op);
    const existing = this.d.reconciler.routes.get(name);
    const clash = [...this.d.reconciler.routes.values()].find((s) => s.record.domain === spec.domain && s.record.name !== name);
    const claimed = this.domainClaims.get(spec.domain);
    if (clash || (claimed && claimed !== name)) {
      op.log.info({ droplet_name: name, domain: spec.domain, action, result: 'conflict' }, 'domain already routed');
      throw new Conflict(`domain ${spec.domain} is already served by route '${clash?.record.name ?? claimed}'`, {
        domain: spec.domain,
        route: clash?.record.name ?? claimed,
      });
    }
    this.domainClaims.set(spec.domain, name);
    try {
      if (spec.require_healthy) {
        const health = await probeRoute(this.d.probe, spec);
        if (!health.ok) {
          op.log.warn(
            { droplet_name: name, domain: spec.domain, action, result: 'unhealthy', health },
            'upstream unhealthy; nothing changed',
          );
          this.d.emit('route.failed', { name, domain: spec.domain, action, reason: 'unhealthy', correlation_id: op.correlationId }, 'warn');
          throw new Unprocessable('upstream failed its health check; nothing was changed', { health }, 'DEPENDENCY_UNAVAILABLE');
        }
        this.d.reconciler.setHealth(name, health);
      }
      const at = new Date(this.now()).toISOString();
      const record: RouteRecord = { name, ...spec, created_at: existing?.record.created_at ?? at, updated_at: at };
      const outcome = await this.d.reconciler.submit({ kind: 'upsert', record });
      if (!outcome.ok) this.fail(op, name, spec.domain, action, outcome);
      op.log.info(
        {
          droplet_name: name,
          domain: spec.domain,
          action,
          result: 'applied',
          revision: outcome.stored?.revision,
          reloaded: outcome.changed,
        },
        'route applied',
      );
      this.d.emit('route.applied', {
        name,
        domain: spec.domain,
        revision: outcome.stored?.revision,
        upstreams: spec.upstreams,
        state: outcome.status?.state,
        correlation_id: op.correlationId,
      });
      this.d.recordProof('route.applied', { name, domain: spec.domain, revision: outcome.stored?.revision });
      if (spec.enable_ssl) this.ensureSslInBackground(name, spec.domain, op);
      return { created: !existing, route: await this.view(outcome.stored as StoredRoute) };
    } finally {
      if (this.domainClaims.get(spec.domain) === name) this.domainClaims.delete(spec.domain);
    }
  }

  async remove(name: string, op: OperationContext): Promise<void> {
    const existing = this.d.reconciler.routes.get(name);
    if (!existing) throw new NotFound(`no route '${name}'`);
    const outcome = await this.d.reconciler.submit({ kind: 'delete', name });
    if (!outcome.ok) this.fail(op, name, existing.record.domain, 'route.delete', outcome);
    op.log.info({ droplet_name: name, domain: existing.record.domain, action: 'route.delete', result: 'deleted' }, 'route deleted');
    this.d.emit('route.deleted', { name, domain: existing.record.domain, correlation_id: op.correlationId });
    this.d.recordProof('route.deleted', { name });
  }

  async list(): Promise<AppliedRoute[]> {
    const all = [...this.d.reconciler.routes.values()].sort((a, b) => a.record.name.localeCompare(b.record.name));
    return Promise.all(all.map((s) => this.view(s)));
  }

  async get(name: string): Promise<AppliedRoute> {
    const s = this.d.reconciler.routes.get(name);
    if (!s) throw new NotFound(`no route '${name}'`);
    return this.view(s);
  }

  /** POST /proxies/{name}/ssl: certificate (reused when still valid), then HTTPS with a redirect. */
  async enableSsl(
    name: string,
    opts: { email?: string; force_renew?: boolean },
    op: OperationContext,
  ): Promise<{ action: string; route: AppliedRoute }> {
    const s = this.d.reconciler.routes.get(name);
    if (!s) throw new NotFound(`no route '${name}'`);
    const domain = s.record.domain;
    let action: string;
    try {
      action = this.d.uploads?.findFor(domain)
        ? 'uploaded'
        : (await this.d.certificates.ensure(domain, { email: opts.email, force: opts.force_renew, correlationId: op.correlationId }))
            .action;
    } catch (err) {
      if (err instanceof BudgetExceeded) {
        const retryIn = Math.max(1, Math.ceil((err.retryAt - this.now()) / 1000));
        op.log.warn({ droplet_name: name, domain, action: 'cert.request', result: 'rate_limited', retry_in_s: retryIn }, err.reason);
        throw new RateLimited(`certificate request refused to protect the ACME account: ${err.reason}`, retryIn, {
          retry_at: new Date(err.retryAt).toISOString(),
        });
      }
      if (err instanceof AcmeFailed)
        throw new DependencyUnavailable(`the ACME CA did not issue a certificate: ${err.message}`, { domain }, 502);
      throw err;
    }
    const record: RouteRecord = { ...s.record, enable_ssl: true, updated_at: new Date(this.now()).toISOString() };
    const outcome = await this.d.reconciler.submit(s.record.enable_ssl ? { kind: 'refresh', name } : { kind: 'upsert', record });
    if (!outcome.ok) this.fail(op, name, domain, 'route.ssl', outcome);
    // Same bytes on disk skip the reload, but new key material must still be loaded.
    if (action !== 'reused' && action !== 'uploaded' && !outcome.changed) await this.d.nginx.reload();
    this.sslPending.delete(name);
    op.log.info({ droplet_name: name, domain, action: 'route.ssl', result: action }, 'route serves HTTPS');
    this.d.emit('route.applied', { name, domain, https: true, revision: outcome.stored?.revision, correlation_id: op.correlationId });
    return { action, route: await this.view(this.d.reconciler.routes.get(name) as StoredRoute) };
  }

  /** PUT with enable_ssl and no certificate yet: serve HTTP now, switch once issued. */
  private ensureSslInBackground(name: string, domain: string, op: OperationContext): void {
    if (this.d.reconciler.statuses.get(name)?.https) return;
    // An uploaded certificate covering the domain serves already (rendered with it); the CA is not asked.
    if (this.d.uploads?.findFor(domain)) return;
    this.sslPending.add(name);
    void this.d.certificates
      .ensure(domain, { correlationId: op.correlationId })
      .then(() => this.d.reconciler.submit({ kind: 'refresh', name }))
      .then((o) => {
        if (!o.ok) this.d.reconciler.noteFailure(name, o.message, o.nginx_output);
        else this.sslPending.delete(name);
      })
      .catch((err) => {
        this.d.reconciler.noteFailure(name, `certificate: ${(err as Error).message}`);
        this.d.logger.warn(
          {
            correlation_id: op.correlationId,
            droplet_name: name,
            domain,
            action: 'cert.request',
            result: 'failed',
            reason: (err as Error).message,
          },
          'background certificate request failed',
        );
      });
  }

  /** Another replica stored a certificate: install it here and reload the routes that use it. */
  async adoptSharedCertificate(domain: string): Promise<boolean> {
    const installed = await this.d.certificates.installShared(domain);
    if (!installed) return false;
    const names = [...this.d.reconciler.routes.values()]
      .filter((s) => s.record.enable_ssl && s.record.domain === domain)
      .map((s) => s.record.name);
    const outcomes = await Promise.all(names.map((name) => this.d.reconciler.submit({ kind: 'refresh', name, reload: true })));
    for (const o of outcomes) if (!o.ok) this.d.reconciler.noteFailure(o.name, o.message, o.nginx_output);
    return true;
  }

  /** One renewal pass; routes whose certificate changed are re-rendered (nginx re-reads it on reload). */
  async renewCertificates(): Promise<string[]> {
    // Uploaded certificates are the operator's to renew (by uploading a newer one).
    const ssl = [...this.d.reconciler.routes.values()].filter((s) => s.record.enable_ssl && !this.d.uploads?.findFor(s.record.domain));
    const renewed = await this.d.certificates.renewDue([...new Set(ssl.map((s) => s.record.domain))]);
    for (const s of ssl.filter((x) => renewed.includes(x.record.domain))) {
      const o = await this.d.reconciler.submit({ kind: 'refresh', name: s.record.name });
      // A refresh that renders the same bytes skips the reload, but new key material must be loaded.
      if (o.ok && !o.changed) await this.d.nginx.reload();
    }
    return renewed;
  }

  /** POST /certificates: check, store sealed for every replica, then serve it on every route it covers. */
  async uploadCertificate(
    pem: { certificate: string; key: string },
    op: OperationContext,
  ): Promise<{ created: boolean; certificate: UploadedCertInfo; routes: string[] }> {
    const uploads = this.requireUploads();
    let checked: CheckedUpload;
    try {
      checked = checkUpload(pem.certificate, pem.key, this.now());
    } catch (err) {
      if (!(err instanceof UploadRefused)) throw err;
      op.log.info({ action: 'cert.upload', result: 'refused', field: err.field, reason: err.message }, 'uploaded certificate refused');
      throw new InvalidRequest(`invalid ${err.field}: ${err.message}`, fieldErrors([{ path: [err.field], message: err.message }]));
    }
    const created = !uploads.get(checked.info.id);
    try {
      await uploads.add(checked);
    } catch (err) {
      throw new DependencyUnavailable('cannot store the certificate', { reason: (err as Error).message });
    }
    const { id, names, not_after } = checked.info;
    op.log.info({ action: 'cert.upload', result: 'stored', id, names, not_after }, 'certificate uploaded');
    this.d.emit('cert.uploaded', { id, names, not_after, correlation_id: op.correlationId });
    const routes = await this.refreshCovered(names);
    return { created, certificate: checked.info, routes };
  }

  listCertificates(): UploadedCertInfo[] {
    return this.d.uploads?.list() ?? [];
  }

  getCertificate(id: string): UploadedCertInfo {
    const c = this.d.uploads?.get(id);
    if (!c) throw new NotFound(`no uploaded certificate '${id}'`);
    return c;
  }

  async deleteCertificate(id: string, op: OperationContext): Promise<{ deleted: true; id: string; routes: string[] }> {
    const uploads = this.requireUploads();
    let removed: UploadedCertInfo | undefined;
    try {
      removed = await uploads.remove(id);
    } catch (err) {
      throw new DependencyUnavailable('cannot delete the certificate', { reason: (err as Error).message });
    }
    if (!removed) throw new NotFound(`no uploaded certificate '${id}'`);
    op.log.info({ action: 'cert.delete', result: 'deleted', id, names: removed.names }, 'uploaded certificate deleted');
    this.d.emit('cert.deleted', { id, names: removed.names, correlation_id: op.correlationId });
    const routes = await this.refreshCovered(removed.names);
    // Routes it served fall back to an ACME certificate: on disk already, or asked for now.
    for (const name of routes) {
      const domain = this.d.reconciler.routes.get(name)?.record.domain;
      if (domain) this.ensureSslInBackground(name, domain, op);
    }
    return { deleted: true, id, routes };
  }

  /** Another replica uploaded or deleted `upload.<id>`: follow it and re-render the routes concerned. */
  async adoptUploadedCertificate(id: string): Promise<void> {
    const uploads = this.d.uploads;
    if (!uploads) return;
    const before = uploads.get(id);
    const after = await uploads.sync(id);
    if (!after.changed) return;
    const names = [...new Set([...(before?.names ?? []), ...(after.info?.names ?? [])])];
    if (names.length > 0) await this.refreshCovered(names);
  }

  /** Re-render (and reload) every HTTPS route whose domain one of `names` covers. */
  private async refreshCovered(names: string[]): Promise<string[]> {
    const routes = [...this.d.reconciler.routes.values()]
      .filter((s) => s.record.enable_ssl && covers(names, s.record.domain))
      .map((s) => s.record.name);
    const outcomes = await Promise.all(routes.map((name) => this.d.reconciler.submit({ kind: 'refresh', name, reload: true })));
    for (const o of outcomes) {
      if (o.ok) this.sslPending.delete(o.name);
      else this.d.reconciler.noteFailure(o.name, o.message, o.nginx_output);
    }
    return routes;
  }

  private requireUploads(): UploadedCerts {
    if (!this.d.uploads) throw new DependencyUnavailable('certificate uploads are not available on this replica');
    return this.d.uploads;
  }

  async health(): Promise<{ status: 'healthy' | 'degraded' | 'unhealthy'; checks: Record<string, unknown> }> {
    const binary = await this.d.nginx.binaryPresent();
    let writable = true;
    for (const dir of this.d.configDirs) {
      try {
        await access(dir, constants.W_OK);
      } catch {
        writable = false;
      }
    }
    const running = (await this.d.nginx.masterPid()) !== undefined;
    const lastReload = this.d.nginx.lastReload;
    const certs = await this.d.certificates.list();
    const ssl = new Set([...this.d.reconciler.routes.values()].filter((s) => s.record.enable_ssl).map((s) => s.record.domain));
    const near = certs
      .filter((c) => ssl.has(c.domain))
      .map((c) => ({ domain: c.domain, not_after: c.not_after, days_left: Math.floor((Date.parse(c.not_after) - this.now()) / DAY) }))
      .filter((c) => c.days_left < Math.min(14, this.d.renewBeforeDays));
    const failed = [...this.d.reconciler.statuses.entries()].filter(([, s]) => s.state === 'failed').map(([n]) => n);
    const unhealthy = !binary || !writable || !running;
    const degraded = (lastReload && !lastReload.ok) || near.length > 0 || failed.length > 0;
    return {
      status: unhealthy ? 'unhealthy' : degraded ? 'degraded' : 'healthy',
      checks: {
        nginx_binary: { ok: binary },
        config_dir_writable: { ok: writable },
        nginx_running: { ok: running },
        last_reload: lastReload ?? null,
        certificates_near_expiry: near,
        failed_routes: failed,
        routes: this.d.reconciler.routes.size,
      },
    };
  }
}
