// Filtering, searching and summarising instances: plain functions over the unified model.
import type { Instance, InstanceStatus, ProviderName } from '../providers/cloud-provider.js';

export interface InstanceFilter {
  provider?: ProviderName;
  status?: InstanceStatus;
  region?: string;
  tag?: string;
  /** Case-insensitive substring of the name. */
  name?: string;
}

export function filterInstances(items: Instance[], f: InstanceFilter): Instance[] {
  const name = f.name?.toLowerCase();
  return items.filter(
    (i) =>
      (!f.provider || i.provider === f.provider) &&
      (!f.status || i.status === f.status) &&
      (!f.region || i.region === f.region) &&
      (!f.tag || i.tags.includes(f.tag)) &&
      (!name || i.name.toLowerCase().includes(name)),
  );
}

/** Matches name, any IP, either id, or a tag (case-insensitive substring). */
export function searchInstances(items: Instance[], q: string): Instance[] {
  const needle = q.trim().toLowerCase();
  if (!needle) return items;
  return items.filter((i) =>
    [i.name, i.ipv4, i.ipv6, i.private_ip, i.id, i.provider_id, ...i.tags, ...Object.entries(i.labels).map(([k, v]) => `${k}:${v}`)].some(
      (s) => s?.toLowerCase().includes(needle),
    ),
  );
}

export function sortInstances(items: Instance[]): Instance[] {
  return [...items].sort(
    (a, b) => a.provider.localeCompare(b.provider) || a.name.localeCompare(b.name) || a.provider_id.localeCompare(b.provider_id),
  );
}

export interface FleetSummary {
  total: number;
  by_provider: Record<string, number>;
  by_status: Record<string, number>;
  by_region: Record<string, number>;
  estimated_monthly_cost: {
    /** Per currency: Hetzner bills in EUR, the others in USD. */
    by_currency: Record<string, number>;
    by_provider: Record<string, { amount: number; currency: string; priced: number; unpriced: number }>;
  };
}

const round2 = (n: number) => Math.round(n * 100) / 100;

export function summarise(items: Instance[], currencyOf: (p: ProviderName) => string): FleetSummary {
  const count = (key: (i: Instance) => string) =>
    items.reduce<Record<string, number>>((acc, i) => ((acc[key(i)] = (acc[key(i)] ?? 0) + 1), acc), {});
  const byProvider: FleetSummary['estimated_monthly_cost']['by_provider'] = {};
  const byCurrency: Record<string, number> = {};
  for (const i of items) {
    const currency = currencyOf(i.provider);
    const e = (byProvider[i.provider] ??= { amount: 0, currency, priced: 0, unpriced: 0 });
    // Deleting or off servers still bill on these providers until destroyed.
    if (i.price_monthly === null) e.unpriced++;
    else {
      e.priced++;
      e.amount = round2(e.amount + i.price_monthly);
      byCurrency[currency] = round2((byCurrency[currency] ?? 0) + i.price_monthly);
    }
  }
  return {
    total: items.length,
    by_provider: count((i) => i.provider),
    by_status: count((i) => i.status),
    by_region: count((i) => i.region ?? 'unknown'),
    estimated_monthly_cost: { by_currency: byCurrency, by_provider: byProvider },
  };
}
