import type { Logger } from '@droplet-mesh/udc-kit';
import { BudgetExceeded, type AcmeBudget } from './budget.js';
import type { CertInfo, CertStore } from './cert-store.js';
import type { CertificateIssuer } from './acme-issuer.js';
import type { SharedCertStore } from './shared-certs.js';

export interface CertificatesDeps {
  store: CertStore;
  budget: AcmeBudget;
  issuer: CertificateIssuer;
  renewBeforeDays: number;
  defaultEmail?: string;
  logger: Logger;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  now?: () => number;
  /** Certificates shared between replicas; without it each replica keeps its own. */
  shared?: SharedCertStore;
  /** How long one replica may hold the right to ask the CA for a domain. */
  leaseMs?: number;
  leasePollMs?: number;
}

/** fetched: another replica had obtained it; installed here from the shared store. */
export type EnsureOutcome = { action: 'reused' | 'issued' | 'renewed' | 'fetched'; certificate: CertInfo };

export class AcmeFailed extends Error {}

const DAY = 86_400_000;

/**
 * Obtains certificates without getting the account locked out: a valid certificate is
 * reused, every order is counted in the persisted budget first, one issuance per domain
 * runs at a time, and failed renewals back off exponentially.
 */
export class Certificates {
  private inflight = new Map<string, Promise<EnsureOutcome>>();
  private backoff = new Map<string, { failures: number; next_at: number }>();
  private now: () => number;

  constructor(private d: CertificatesDeps) {
    this.now = d.now ?? Date.now;
  }

  isDue(info: CertInfo | undefined): boolean {
    return !info || Date.parse(info.not_after) - this.now() < this.d.renewBeforeDays * DAY;
  }

  read(domain: string): Promise<CertInfo | undefined> {
    return this.d.store.read(domain);
  }

  paths(domain: string) {
    return this.d.store.paths(domain);
  }

  /** Reuse a certificate that is not due, otherwise order one (counted against the budget). */
  ensure(domain: string, opts: { email?: string; force?: boolean; correlationId?: string } = {}): Promise<EnsureOutcome> {
    const running = this.inflight.get(domain);
    if (running) return running;
    const p = this.run(domain, opts).finally(() => this.inflight.delete(domain));
    this.inflight.set(domain, p);
    return p;
  }

  /**
   * Install the shared certificate for `domain` when it is valid and newer than the one on
   * disk here; returns it when installed. Errors reading the bucket count as "none".
   */
  async installShared(domain: string, correlationId?: string): Promise<CertInfo | undefined> {
    if (!this.d.shared) return undefined;
    let remote: Awaited<ReturnType<NonNullable<typeof this.d.shared>['get']>>;
    try {
      remote = await this.d.shared.get(domain);
    } catch (err) {
      this.d.logger.warn(
        { correlation_id: correlationId, domain, action: 'cert.fetch', result: 'failed', reason: (err as Error).message },
        'cannot read the shared certificate',
      );
      return undefined;
    }
    if (!remote || remote.notAfter <= this.now()) return undefined;
    const local = await this.d.store.read(domain);
    if (local && (local.serial === remote.serial || Date.parse(local.not_after) >= remote.notAfter)) return undefined;
    await this.d.store.save(domain, remote.keyPem, remote.chainPem);
    const info = await this.d.store.read(domain);
    this.d.logger.info(
      { correlation_id: correlationId, domain, action: 'cert.fetch', result: 'installed', not_after: info?.not_after },
      'certificate installed from the shared store',
    );
    return info;
  }

  /**
   * Wait for the right to ask the CA. While another replica holds it, watch for the
   * certificate it obtains and take that instead.
   */
  private async leaseOrFetch(domain: string, correlationId?: string): Promise<{ lease: boolean } | { fetched: CertInfo }> {
    const shared = this.d.shared;
    if (!shared) return { lease: false };
    const leaseMs = this.d.leaseMs ?? 120_000;
    const deadline = Date.now() + leaseMs + 5000;
    for (;;) {
      if (await shared.acquireLease(domain, leaseMs)) return { lease: true };
      await new Promise((r) => setTimeout(r, this.d.leasePollMs ?? 500));
      const fetched = await this.installShared(domain, correlationId);
      if (fetched && !this.isDue(fetched)) return { fetched };
      if (Date.now() > deadline) throw new AcmeFailed('another replica is obtaining this certificate; try again shortly');
    }
  }

  private async run(domain: string, opts: { email?: string; force?: boolean; correlationId?: string }): Promise<EnsureOutcome> {
    let existing = await this.d.store.read(domain);
    if (existing && !opts.force && !this.isDue(existing)) return { action: 'reused', certificate: existing };
    if (!opts.force) {
      // Another replica may hold a newer one: installing it costs the CA nothing.
      const fetched = await this.installShared(domain, opts.correlationId);
      if (fetched && !this.isDue(fetched)) return { action: 'fetched', certificate: fetched };
      existing = fetched ?? existing;
    }
    const turn = await this.leaseOrFetch(domain, opts.correlationId);
    if ('fetched' in turn) return { action: 'fetched', certificate: turn.fetched };
    try {
      return await this.obtain(domain, existing, opts);
    } finally {
      if (turn.lease) await this.d.shared?.releaseLease(domain).catch(() => undefined);
    }
  }

  private async obtain(
    domain: string,
    existing: CertInfo | undefined,
    opts: { email?: string; correlationId?: string },
  ): Promise<EnsureOutcome> {
    const action = existing ? 'renewed' : 'issued';
    const log = this.d.logger.child({
      correlation_id: opts.correlationId,
      domain,
      action: `cert.${action === 'issued' ? 'issue' : 'renew'}`,
    });
    await this.d.budget.reserve(domain); // throws BudgetExceeded before any request to the CA
    try {
      const { keyPem, chainPem } = await this.d.issuer.issue(domain, opts.email ?? this.d.defaultEmail);
      await this.d.store.save(domain, keyPem, chainPem);
      await this.d.budget.record(domain, 'issued');
      // The other replicas install it from here (and are told by their watch).
      await this.d.shared
        ?.put(domain, keyPem, chainPem)
        .catch((err) =>
          log.warn(
            { reason: (err as Error).message },
            'certificate obtained but not shared; other replicas will fetch or request their own',
          ),
        );
      const certificate = (await this.d.store.read(domain)) as CertInfo;
      this.backoff.delete(domain);
      log.info({ result: 'success', not_after: certificate.not_after, issuer: certificate.issuer }, 'certificate obtained');
      this.d.emit(`cert.${action}`, {
        domain,
        not_after: certificate.not_after,
        issuer: certificate.issuer,
        correlation_id: opts.correlationId,
      });
      return { action, certificate };
    } catch (err) {
      await this.d.budget.record(domain, 'failed').catch(() => undefined);
      const message = acmeMessage(err);
      log.warn({ result: 'failed', reason: message }, 'certificate request failed');
      this.d.emit('cert.failed', { domain, reason: message, correlation_id: opts.correlationId }, 'warn');
      throw new AcmeFailed(message);
    }
  }

  /**
   * Offer valid certificates this replica holds and the shared store lacks (obtained before
   * sharing existed, or while the bucket was unreachable), so the others need not ask the CA.
   */
  async shareLocal(domains: string[]): Promise<string[]> {
    const shared = this.d.shared;
    if (!shared) return [];
    const offered: string[] = [];
    for (const domain of domains) {
      const local = await this.d.store.read(domain);
      if (!local || Date.parse(local.not_after) <= this.now()) continue;
      const remote = await shared.get(domain);
      if (remote && remote.notAfter >= Date.parse(local.not_after)) continue;
      const pem = await this.d.store.readPem(domain);
      if (!pem) continue;
      await shared.put(domain, pem.keyPem, pem.chainPem);
      offered.push(domain);
    }
    return offered;
  }

  /** One pass of the renewal loop over the domains that want HTTPS; returns the renewed ones. */
  async renewDue(domains: string[]): Promise<string[]> {
    const renewed: string[] = [];
    for (const domain of domains) {
      const b = this.backoff.get(domain);
      if (b && b.next_at > this.now()) continue;
      if (!this.isDue(await this.d.store.read(domain))) continue;
      try {
        await this.ensure(domain);
        renewed.push(domain);
      } catch (err) {
        const failures = (b?.failures ?? 0) + 1;
        const retryIn =
          err instanceof BudgetExceeded ? Math.max(60_000, err.retryAt - this.now()) : Math.min(DAY, 5 * 60_000 * 2 ** (failures - 1));
        this.backoff.set(domain, { failures, next_at: this.now() + retryIn });
        this.d.logger.warn(
          { domain, action: 'cert.renew', result: 'failed', retry_in_s: Math.round(retryIn / 1000), reason: (err as Error).message },
          'renewal failed; backing off',
        );
      }
    }
    return renewed;
  }

  budgetEvents() {
    return this.d.budget.events();
  }

  list(): Promise<CertInfo[]> {
    return this.d.store.list();
  }
}

/** The CA's own words where there are some, without any request internals. */
function acmeMessage(err: unknown): string {
  const e = err as { message?: string; response?: { data?: { detail?: string } } };
  return (e.response?.data?.detail ?? e.message ?? 'ACME request failed').slice(0, 1000);
}
