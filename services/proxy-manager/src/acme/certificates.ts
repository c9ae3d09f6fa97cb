import type { Logger } from '@droplet-mesh/udc-kit';
import { BudgetExceeded, type AcmeBudget } from './budget.js';
import type { CertInfo, CertStore } from './cert-store.js';
import type { CertificateIssuer } from './acme-issuer.js';

export interface CertificatesDeps {
  store: CertStore;
  budget: AcmeBudget;
  issuer: CertificateIssuer;
  renewBeforeDays: number;
  defaultEmail?: string;
  logger: Logger;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  now?: () => number;
}

export type EnsureOutcome = { action: 'reused' | 'issued' | 'renewed'; certificate: CertInfo };

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

  private async run(domain: string, opts: { email?: string; force?: boolean; correlationId?: string }): Promise<EnsureOutcome> {
    const existing = await this.d.store.read(domain);
    if (existing && !opts.force && !this.isDue(existing)) return { action: 'reused', certificate: existing };
    const action = existing ? 'renewed' : 'issued';
    const log = this.d.logger.child({ correlation_id: opts.correlationId, domain, action: `cert.${action === 'issued' ? 'issue' : 'renew'}` });
    await this.d.budget.reserve(domain); // throws BudgetExceeded before any request to the CA
    try {
      const { keyPem, chainPem } = await this.d.issuer.issue(domain, opts.email ?? this.d.defaultEmail);
      await this.d.store.save(domain, keyPem, chainPem);
      await this.d.budget.record(domain, 'issued');
      const certificate = (await this.d.store.read(domain)) as CertInfo;
      this.backoff.delete(domain);
      log.info({ result: 'success', not_after: certificate.not_after, issuer: certificate.issuer }, 'certificate obtained');
      this.d.emit(`cert.${action}`, { domain, not_after: certificate.not_after, issuer: certificate.issuer, correlation_id: opts.correlationId });
      return { action, certificate };
    } catch (err) {
      await this.d.budget.record(domain, 'failed').catch(() => undefined);
      const message = acmeMessage(err);
      log.warn({ result: 'failed', reason: message }, 'certificate request failed');
      this.d.emit('cert.failed', { domain, reason: message, correlation_id: opts.correlationId }, 'warn');
      throw new AcmeFailed(message);
    }
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
        const retryIn = err instanceof BudgetExceeded ? Math.max(60_000, err.retryAt - this.now()) : Math.min(DAY, 5 * 60_000 * 2 ** (failures - 1));
        this.backoff.set(domain, { failures, next_at: this.now() + retryIn });
        this.d.logger.warn({ domain, action: 'cert.renew', result: 'failed', retry_in_s: Math.round(retryIn / 1000), reason: (err as Error).message }, 'renewal failed; backing off');
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
