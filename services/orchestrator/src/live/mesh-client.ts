import { DependencyUnavailable, UdcError, type MessageReply, type RegistryLink, type SendRequest } from '@droplet-mesh/udc-kit';

export type MeshDroplet = 'deployer' | 'proxy-manager' | 'multi-cloud-manager' | 'health-monitor';

/** A droplet answered with an error: its status and UDC error, kept for the step's report (a 502 if it reaches a client). */
export class CallFailed extends UdcError {
  constructor(
    readonly droplet: MeshDroplet,
    readonly status: number,
    readonly upstreamCode: string | undefined,
    message: string,
    readonly upstreamDetails?: unknown,
  ) {
    super(502, 'DEPENDENCY_UNAVAILABLE', `${droplet} answered ${status}${upstreamCode ? ` ${upstreamCode}` : ''}: ${message}`, {
      droplet,
      status,
      code: upstreamCode,
      details: upstreamDetails,
    });
  }
}

export interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Statuses that are an answer, not a failure (e.g. 404 for "absent"). */
  accept?: number[];
}

/** Other droplets' JSON, read field by field where it is used. */
// biome-ignore lint/suspicious/noExplicitAny: answers of other droplets, checked where read
export type Json = any;

export interface MeshResponse<T = Json> {
  status: number;
  body: T;
}

/**
 * Calls the other droplets over HTTP with the orchestrator's own JWT. Each droplet is
 * found through the registry (its record's url), unless an explicit URL is configured.
 */
export class MeshClient {
  constructor(
    private readonly registry: () => RegistryLink | undefined,
    private readonly overrides: Partial<Record<MeshDroplet, string>>,
    private readonly defaultTimeoutMs: number,
    /** UDC messages with the orchestrator's own token (the droplet's ctx.send). */
    private readonly sender?: (req: Partial<SendRequest> & Pick<SendRequest, 'target' | 'message_type'>) => Promise<MessageReply>,
  ) {}

  /** A UDC command to another droplet; its error (if any) as a CallFailed. */
  async command(droplet: MeshDroplet, action: string, payload: Record<string, unknown>, timeoutMs = 30_000): Promise<Json> {
    if (!this.sender) throw new DependencyUnavailable(`cannot send ${action} to ${droplet}: no message bus`);
    const r = await this.sender({
      target: droplet,
      message_type: 'command',
      payload: { action, ...payload },
      timeout_ms: timeoutMs,
      retry_count: 1,
    });
    if (r.result !== 'success') throw new CallFailed(droplet, 0, r.error?.code, r.error?.message ?? r.result);
    return r.data;
  }

  async urlOf(droplet: MeshDroplet): Promise<string> {
    const fixed = this.overrides[droplet];
    if (fixed) return fixed.replace(/\/$/, '');
    const reg = this.registry();
    if (!reg) throw new DependencyUnavailable(`cannot find ${droplet}: this droplet has no registry link (set REGISTRY_KEY)`);
    let rec: Awaited<ReturnType<RegistryLink['get']>>;
    try {
      rec = await reg.get(droplet);
    } catch (err) {
      throw new DependencyUnavailable(`cannot find ${droplet}: the registry did not answer`, { reason: (err as Error).message });
    }
    if (!rec) throw new DependencyUnavailable(`${droplet} is not registered`, { droplet });
    return rec.url.replace(/\/$/, '');
  }

  private async token(): Promise<string> {
    const reg = this.registry();
    if (!reg) throw new DependencyUnavailable('no registry link: the orchestrator has no token to call other droplets (set REGISTRY_KEY)');
    try {
      return await reg.token();
    } catch (err) {
      throw new DependencyUnavailable('no token from the registry', { reason: (err as Error).message });
    }
  }

  async call<T = Json>(droplet: MeshDroplet, method: string, path: string, opts: CallOptions = {}): Promise<MeshResponse<T>> {
    const url = `${await this.urlOf(droplet)}${path}`;
    const headers: Record<string, string> = { authorization: `Bearer ${await this.token()}`, accept: 'application/json', ...opts.headers };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(opts.timeoutMs ?? this.defaultTimeoutMs),
      });
    } catch (err) {
      throw new DependencyUnavailable(`${droplet} did not answer ${method} ${path}`, { droplet, reason: (err as Error).message });
    }
    const text = await res.text();
    let body: Json;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (res.ok || opts.accept?.includes(res.status)) return { status: res.status, body };
    const err = body?.error;
    throw new CallFailed(droplet, res.status, err?.code, err?.message ?? (text.slice(0, 200) || res.statusText), err?.details);
  }

  get = <T = Json>(d: MeshDroplet, path: string, opts?: CallOptions) => this.call<T>(d, 'GET', path, opts);
}
