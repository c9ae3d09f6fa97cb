import { DependencyUnavailable, NotFound, UdcError, type ErrorCode } from '@droplet-mesh/udc-kit';

/** The mesh's droplets (README): when one is not registered, it is down rather than unknown. */
export const MESH_DROPLETS = ['registry', 'multi-cloud-manager', 'proxy-manager', 'deployer', 'health-monitor'];

/** What the console needs of a registry record. */
export interface DropletRecordView {
  id: string;
  url: string;
  kind: string;
  steward: string;
  status: string;
}

interface Page {
  items: DropletRecordView[];
  pagination: { next_page: number | null };
}

/**
 * Finds droplets through the registry's discovery API (GET /droplets) with the caller's
 * token. Only droplets that registered themselves (steward = id, kind service) can be
 * reached through the console: apps and hosts other droplets registered are not sent
 * an operator's token.
 */
export class Discovery {
  private cache?: { at: number; items: DropletRecordView[] };
  private pending?: Promise<DropletRecordView[]>;

  constructor(
    private readonly opts: {
      registryUrl: () => string;
      cacheMs: () => number;
      /** This console's own id: never a forwarding target. */
      selfId: () => string;
      timeoutMs?: number;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** The base URL to forward to for `id`. */
  async resolve(id: string, token: string): Promise<string> {
    if (id === this.opts.selfId()) throw new NotFound(`'${id}' is this console; call it directly`);
    if (id === 'registry') return this.opts.registryUrl().replace(/\/+$/, '');
    const items = await this.list(token);
    const r = items.find((x) => x.id === id);
    if (r?.kind !== 'service' || r.steward !== r.id) {
      // One of the mesh's own droplets missing from the registry is down (never started, or gone and removed).
      if (MESH_DROPLETS.includes(id))
        throw new DependencyUnavailable(`droplet '${id}' is not registered: it is not running, or was removed from the registry`, {
          droplet: id,
          registered: false,
        });
      throw new NotFound(`no droplet '${id}' is registered`, { droplet: id });
    }
    return r.url.replace(/\/+$/, '');
  }

  async list(token: string): Promise<DropletRecordView[]> {
    const c = this.cache;
    if (c && this.now() - c.at < this.opts.cacheMs()) return c.items;
    this.pending ??= this.fetchAll(token).finally(() => {
      this.pending = undefined;
    });
    try {
      return await this.pending;
    } catch (err) {
      // The registry is down: keep reaching the droplets we knew of for a minute.
      if (c && this.now() - c.at < 60_000) return c.items;
      throw err;
    }
  }

  private async fetchAll(token: string): Promise<DropletRecordView[]> {
    const base = this.opts.registryUrl().replace(/\/+$/, '');
    const items: DropletRecordView[] = [];
    let page: number | null = 1;
    while (page) {
      let res: Response;
      try {
        res = await fetch(`${base}/droplets?kind=service&per_page=200&page=${page}`, {
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
        });
      } catch (err) {
        throw new DependencyUnavailable(`the registry is unreachable: ${reason(err)}`, { droplet: 'registry' });
      }
      const body = (await res.json().catch(() => undefined)) as (Page & { error?: { code?: string; message?: string } }) | undefined;
      if (!res.ok || !body?.items) {
        const e = body?.error;
        throw new UdcError(
          res.status >= 400 ? res.status : 502,
          (e?.code as ErrorCode) ?? 'DEPENDENCY_UNAVAILABLE',
          `the registry refused the droplet list: ${e?.message ?? `HTTP ${res.status}`}`,
          { droplet: 'registry' },
        );
      }
      items.push(...body.items);
      page = body.pagination?.next_page ?? null;
    }
    this.cache = { at: this.now(), items };
    return items;
  }

  forget(): void {
    this.cache = undefined;
  }
}

export function reason(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
