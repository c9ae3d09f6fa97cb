import type { HttpProbe } from './http-checker.js';

/**
 * Proves this monitor's own network works: any HTTP answer (whatever its status) from
 * any control URL (peers' /health, configured URLs) counts. With no URL to try it
 * cannot tell, and says so with `undefined`.
 */
export class ControlCheck {
  private last?: { at: number; ok: boolean };
  private pending?: Promise<boolean | undefined>;

  constructor(
    private urls: () => string[],
    private probe: HttpProbe,
    private timeoutMs: number,
    private maxAgeMs: number,
    private now: () => number = Date.now,
  ) {}

  async reachable(): Promise<boolean | undefined> {
    if (this.last && this.now() - this.last.at < this.maxAgeMs) return this.last.ok;
    this.pending ??= this.run().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async run(): Promise<boolean | undefined> {
    const urls = this.urls();
    if (urls.length === 0) return undefined;
    const results = await Promise.all(urls.map((u) => this.probe.get(u, this.timeoutMs)));
    const ok = results.some((r) => r.status_code !== undefined);
    this.last = { at: this.now(), ok };
    return ok;
  }
}
