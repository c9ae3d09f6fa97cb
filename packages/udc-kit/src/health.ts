import type { Logger } from 'pino';

export interface CheckResult {
  ok: boolean;
  detail?: unknown;
}
export interface HealthCheck {
  /** A failing required check makes the droplet `error`; an optional one only `degraded`. */
  required?: boolean;
  intervalMs?: number;
  check: () => CheckResult | boolean | Promise<CheckResult | boolean>;
}
export interface DependencyStatus {
  name: string;
  required: boolean;
  status: 'ok' | 'degraded' | 'down' | 'unknown';
  detail?: unknown;
  checked_at?: string;
}

/** Runs checks in the background; /health only reads the cached results. */
export class HealthBoard {
  private results = new Map<string, DependencyStatus>();
  private timers: NodeJS.Timeout[] = [];
  constructor(
    private checks: Record<string, HealthCheck>,
    private logger: Logger,
  ) {
    for (const [name, c] of Object.entries(checks)) this.results.set(name, { name, required: !!c.required, status: 'unknown' });
  }

  start(): void {
    for (const [name, c] of Object.entries(this.checks)) {
      void this.run(name, c);
      const t = setInterval(() => void this.run(name, c), c.intervalMs ?? 5000);
      t.unref();
      this.timers.push(t);
    }
  }

  async runAll(): Promise<void> {
    await Promise.all(Object.entries(this.checks).map(([n, c]) => this.run(n, c)));
  }

  private async run(name: string, c: HealthCheck): Promise<void> {
    let res: CheckResult;
    try {
      const r = await c.check();
      res = typeof r === 'boolean' ? { ok: r } : r;
    } catch (err) {
      res = { ok: false, detail: (err as Error).message };
    }
    const prev = this.results.get(name);
    const status = res.ok ? 'ok' : c.required ? 'down' : 'degraded';
    if (prev && prev.status !== status && prev.status !== 'unknown')
      this.logger.warn({ dependency: name, from: prev.status, to: status }, 'dependency status changed');
    this.results.set(name, { name, required: !!c.required, status, detail: res.detail, checked_at: new Date().toISOString() });
  }

  /** Sets a result directly (for checks driven by events, e.g. NATS connection state). */
  set(name: string, required: boolean, ok: boolean, detail?: unknown): void {
    this.results.set(name, {
      name,
      required,
      status: ok ? 'ok' : required ? 'down' : 'degraded',
      detail,
      checked_at: new Date().toISOString(),
    });
  }

  list(): DependencyStatus[] {
    return [...this.results.values()];
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}
