import type { Output } from '../output.js';

/** A plan as the orchestrator answers it (GET /stacks/{name}/plans/{id}). */
export interface StackPlan {
  id: string;
  stack: string;
  kind: string;
  steps: PlanStep[];
  cost: { monthly_delta: Record<string, number>; unknown_prices: string[] };
  summary: Record<string, number>;
  warnings: string[];
}

export interface PlanStep {
  n: number;
  id: string;
  kind: string;
  action: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  changes: Array<{ field: string; before: unknown; after: unknown }>;
  destructive: boolean;
  reasons: string[];
  cost_monthly_delta?: number;
  currency?: string;
  unsupported?: string;
}

const SIGN: Record<string, string> = { create: '+', update: '~', replace: '-/+', deploy: '>', delete: '-' };

const short = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v ?? null);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const money = (n: number, currency = 'USD') => `${n >= 0 ? '+' : '-'}${Math.abs(n).toFixed(2)} ${currency}/month`;

/** One line per step: its sign, id, what changes; destructive steps and skipped ones say so. */
export function printPlan(out: Output, p: StackPlan, detail = false): void {
  if (p.steps.length === 0) {
    out.line(`stack ${p.stack}: no changes (plan ${p.id})`);
  } else {
    for (const s of p.steps) {
      const what = s.changes.length > 0 ? `: ${s.changes.map((c) => c.field).join(', ')}` : '';
      const flags = [
        s.destructive ? 'DESTRUCTIVE' : '',
        s.cost_monthly_delta !== undefined ? money(s.cost_monthly_delta, s.currency) : '',
        s.unsupported ? `skipped: ${s.unsupported}` : '',
      ].filter(Boolean);
      out.line(
        `${String(s.n).padStart(3)}. ${(SIGN[s.action] ?? '?').padEnd(3)} ${s.action} ${s.id}${what}${flags.length ? `  (${flags.join('; ')})` : ''}`,
      );
      if (detail) {
        for (const c of s.changes) out.line(`       ${c.field}: ${short(c.before)} → ${short(c.after)}`);
        for (const r of s.reasons) out.line(`       why: ${r}`);
      }
    }
    const counts = Object.entries(p.summary)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ');
    out.line(`plan ${p.id}: ${p.steps.length} step(s) (${counts})`);
  }
  const cost = Object.entries(p.cost.monthly_delta);
  if (cost.length > 0) out.line(`monthly cost: ${cost.map(([c, n]) => money(n, c)).join(', ')}`);
  if (p.cost.unknown_prices.length > 0) out.line(`no catalog price for: ${p.cost.unknown_prices.join(', ')}`);
  for (const w of p.warnings) out.note(`warning: ${w}`);
}
