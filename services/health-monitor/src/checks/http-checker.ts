import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { Agent, buildConnector, request } from 'undici';
import { AddressPolicy, addressRefusedError, resolveAll, type AllowEntry, type ResolveAll } from '@droplet-mesh/udc-kit';

export interface CheckOutcome {
  ok: boolean;
  latency_ms: number;
  status_code?: number;
  error?: string;
}

/**
 * Which address policy a check obeys. `app`: a record another droplet registered (an app,
 * a host): link-local/metadata addresses and the mesh's own loopback ports are refused.
 * `droplet`: a mesh droplet registered as itself, whose address is one of those ports:
 * only link-local/metadata addresses are refused. None: operator configuration (static
 * targets, control checks), not guarded.
 */
export type CheckGuard = 'app' | 'droplet';

/** How a check reaches a URL; a port so tests and benchmarks can count or fake it. */
export interface HttpProbe {
  get(url: string, timeoutMs: number, guard?: CheckGuard): Promise<CheckOutcome>;
  close(): Promise<void>;
}

export interface ProbeOptions {
  /** CHECK_ALLOW: host:port exceptions to the policy. */
  allow?: readonly AllowEntry[];
  /** Ports refused on loopback besides the mesh's (this monitor's own PORT). */
  extraLoopbackPorts?: readonly number[];
  /** Name resolution for guarded checks (default getaddrinfo). */
  resolve?: ResolveAll;
}

export function checkPolicies(o: ProbeOptions = {}): Record<CheckGuard, AddressPolicy> {
  return {
    app: new AddressPolicy({ allow: o.allow, extraLoopbackPorts: o.extraLoopbackPorts }),
    droplet: new AddressPolicy({ allow: o.allow, loopbackPorts: [] }),
  };
}

/**
 * An undici connector that resolves the name itself, refuses it when any address fails
 * the policy, and connects to the address it checked: a name cannot be re-pointed between
 * the check and the connection.
 */
function guardedConnector(policy: AddressPolicy, resolve: ResolveAll): buildConnector.connector {
  const base = buildConnector({});
  return (opts, callback) => {
    const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
    const host = opts.hostname.startsWith('[') ? opts.hostname.slice(1, -1) : opts.hostname;
    const refuse = (reason: string | undefined) => callback(addressRefusedError(host, port, reason ?? 'refused'), null);
    if (isIP(host)) {
      const v = policy.checkAddress(host, port);
      return v.ok ? base(opts, callback) : refuse(v.reason);
    }
    resolve(host).then(
      (addrs) => {
        for (const a of addrs) {
          const v = policy.checkAddress(a, port, host);
          if (!v.ok) return refuse(`${host} resolves to ${a}, ${v.reason}`);
        }
        if (addrs.length === 0) return callback(Object.assign(new Error(`${host} has no address`), { code: 'ENOTFOUND' }), null);
        base({ ...opts, hostname: addrs[0], servername: opts.servername || host }, callback);
      },
      (err: Error) => callback(err, null),
    );
  };
}

/**
 * HTTP GET with a hard timeout over a keep-alive pool. A 2xx or 3xx is healthy; any
 * other status, a refused connection or a timeout is a failed check. A guarded check to
 * an address its policy refuses fails with `ADDRESS_REFUSED`, without connecting.
 */
export class UndiciProbe implements HttpProbe {
  private agents: Record<CheckGuard | 'none', Agent>;

  constructor(opts: ProbeOptions = {}) {
    const pool = { keepAliveTimeout: 30_000, connections: 4, pipelining: 1 };
    const policies = checkPolicies(opts);
    const resolve = opts.resolve ?? resolveAll();
    this.agents = {
      none: new Agent(pool),
      app: new Agent({ ...pool, connect: guardedConnector(policies.app, resolve) }),
      droplet: new Agent({ ...pool, connect: guardedConnector(policies.droplet, resolve) }),
    };
  }

  async get(url: string, timeoutMs: number, guard?: CheckGuard): Promise<CheckOutcome> {
    const started = performance.now();
    // The hard deadline (queueing for a connection included) as a plain emitter and a timer
    // cleared when the check ends. AbortSignal.timeout's timer cannot be cleared: every
    // check used to fire it a timeout later anyway (a DOMException and an abort event each,
    // ~8% of the monitor's CPU at 1,000 targets).
    const deadline = new EventEmitter() as DeadlineSignal;
    const timer = setTimeout(abortOnDeadline, timeoutMs, deadline);
    try {
      const res = await request(url, {
        method: 'GET',
        dispatcher: this.agents[guard ?? 'none'],
        // Only a backstop behind the deadline: at 1 s and more undici keeps these on its own
        // shared coarse timer, under 1 s each would be one more native timer per check.
        headersTimeout: timeoutMs + UNDICI_BACKSTOP_MS,
        bodyTimeout: timeoutMs + UNDICI_BACKSTOP_MS,
        signal: deadline,
        headers: CHECK_HEADERS,
      });
      await res.body.dump();
      // dump() ends quietly when the deadline cuts a stalled body short: still a timeout.
      if (deadline.aborted) throw deadline.reason;
      const ok = res.statusCode >= 200 && res.statusCode < 400;
      const latency_ms = Math.round((performance.now() - started) * 10) / 10;
      return ok
        ? { ok, latency_ms, status_code: res.statusCode }
        : { ok, latency_ms, status_code: res.statusCode, error: `HTTP ${res.statusCode}` };
    } catch (err) {
      return { ok: false, latency_ms: Math.round((performance.now() - started) * 10) / 10, error: describeNetworkError(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.agents).map((a) => a.close()));
  }
}

const CHECK_HEADERS = { 'user-agent': 'droplet-mesh-health-monitor' };
const UNDICI_BACKSTOP_MS = 1000;

/** What undici takes as a signal besides an AbortSignal: an emitter with `aborted` and `reason`. */
type DeadlineSignal = EventEmitter & { aborted?: boolean; reason?: unknown };

function abortOnDeadline(signal: DeadlineSignal): void {
  signal.aborted = true;
  signal.reason = Object.assign(new Error('check timed out'), { name: 'TimeoutError' });
  signal.emit('abort');
}

function describeNetworkError(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT')
    return 'timeout';
  return e.code ?? e.cause?.code ?? e.name ?? 'error';
}
