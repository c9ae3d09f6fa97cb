import type { KV } from '@nats-io/kv';

export type BudgetEventKind = 'order' | 'issued' | 'failed';
export interface BudgetEvent {
  kind: BudgetEventKind;
  domain: string;
  at: number;
}

/**
 * Our own ceilings, well under Let's Encrypt's published limits (5 failed validations
 * per hostname per hour, 50 certificates per registered domain per week, 5 duplicate
 * certificates per week, 300 new orders per account per 3 hours).
 */
export const DEFAULT_LIMITS = {
  failedPerDomainPerHour: 2,
  certsPerRegisteredDomainPerWeek: 20,
  duplicatesPerWeek: 2,
  ordersPerAccountPer3Hours: 60,
};
export type BudgetLimits = typeof DEFAULT_LIMITS;

const HOUR = 3600_000;
const WEEK = 7 * 24 * HOUR;

/** The last two labels. Without the Public Suffix List this over-counts (co.uk): the safe side. */
export function registeredDomain(domain: string): string {
  return domain.split('.').slice(-2).join('.');
}

export type BudgetDecision = { allowed: true } | { allowed: false; reason: string; retry_at: number };

/** Pure: may we place an order for `domain` now, given the account's recent events? */
export function decide(events: BudgetEvent[], domain: string, now: number, limits: BudgetLimits = DEFAULT_LIMITS): BudgetDecision {
  const refusals: Array<{ reason: string; retry_at: number }> = [];
  const check = (list: BudgetEvent[], limit: number, windowMs: number, reason: string) => {
    const inWindow = list.filter((e) => e.at > now - windowMs).sort((a, b) => a.at - b.at);
    if (inWindow.length >= limit) refusals.push({ reason, retry_at: inWindow[inWindow.length - limit].at + windowMs });
  };
  check(
    events.filter((e) => e.kind === 'failed' && e.domain === domain),
    limits.failedPerDomainPerHour,
    HOUR,
    `too many failed validations for ${domain} in the last hour`,
  );
  check(
    events.filter((e) => e.kind === 'issued' && e.domain === domain),
    limits.duplicatesPerWeek,
    WEEK,
    `too many certificates for exactly ${domain} this week`,
  );
  const reg = registeredDomain(domain);
  check(
    events.filter((e) => e.kind === 'issued' && registeredDomain(e.domain) === reg),
    limits.certsPerRegisteredDomainPerWeek,
    WEEK,
    `too many certificates under ${reg} this week`,
  );
  check(
    events.filter((e) => e.kind === 'order'),
    limits.ordersPerAccountPer3Hours,
    3 * HOUR,
    'too many new orders for the ACME account in the last 3 hours',
  );
  if (refusals.length === 0) return { allowed: true };
  refusals.sort((a, b) => b.retry_at - a.retry_at);
  return { allowed: false, ...refusals[0] };
}

export class BudgetExceeded extends Error {
  constructor(
    readonly reason: string,
    readonly retryAt: number,
  ) {
    super(reason);
  }
}

/** The account's request ledger in a KV key, updated with compare-and-set so replicas share it. */
export class AcmeBudget {
  constructor(
    private kv: KV,
    private key: string,
    private now: () => number = Date.now,
    private limits: BudgetLimits = DEFAULT_LIMITS,
  ) {}

  private async load(): Promise<{ events: BudgetEvent[]; revision: number }> {
    const e = await this.kv.get(this.key);
    if (!e || e.operation !== 'PUT' || e.length === 0) return { events: [], revision: 0 };
    const raw = e.json<{ events?: BudgetEvent[] }>();
    return { events: Array.isArray(raw.events) ? raw.events : [], revision: e.revision };
  }

  private async modify(fn: (events: BudgetEvent[]) => BudgetEvent[]): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const { events, revision } = await this.load();
      const next = fn(events).filter((e) => e.at > this.now() - WEEK);
      const data = JSON.stringify({ events: next });
      try {
        if (revision === 0) await this.kv.create(this.key, data);
        else await this.kv.update(this.key, data, revision);
        return;
      } catch (err) {
        if (err instanceof BudgetExceeded) throw err;
        // Someone else wrote first: read again and retry.
      }
    }
    throw new Error('could not update the ACME budget ledger');
  }

  async events(): Promise<BudgetEvent[]> {
    return (await this.load()).events;
  }

  /** Count an order against the budget, or throw BudgetExceeded with the time it may be retried. */
  async reserve(domain: string): Promise<void> {
    await this.modify((events) => {
      const d = decide(events, domain, this.now(), this.limits);
      if (!d.allowed) throw new BudgetExceeded(d.reason, d.retry_at);
      return [...events, { kind: 'order', domain, at: this.now() }];
    });
  }

  async record(domain: string, kind: 'issued' | 'failed'): Promise<void> {
    await this.modify((events) => [...events, { kind, domain, at: this.now() }]);
  }
}
