import { isIP } from 'node:net';
import { Agent, buildConnector, type Connector, type Dispatcher } from './undici-client.js';
import { AddressPolicy, addressRefusedError, resolveAll, type AllowEntry, type ResolveAll } from '@droplet-mesh/udc-kit';
import { type Deadline, DeadlineQueue } from './deadline-queue.js';

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
function guardedConnector(policy: AddressPolicy, resolve: ResolveAll): Connector {
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
 *
 * A check is one undici dispatch with its own small handler, not `request()`: a check
 * wants only the status, and `request()` built a body stream, a promise chain and a handler
 * object around each one (issue 16: a fifth of a busy monitor's CPU went to them). The
 * hard deadline (queueing for a connection included) is one shared timer, see DeadlineQueue.
 */
export class UndiciProbe implements HttpProbe {
  private agents: Record<CheckGuard | 'none', Agent>;
  private deadlines = new DeadlineQueue();
  /** Each URL parsed once: checks go to the same few thousand URLs again and again. */
  private destinations = new Map<string, Destination>();

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

  get(url: string, timeoutMs: number, guard?: CheckGuard): Promise<CheckOutcome> {
    const started = performance.now();
    const to = this.destinationOf(url);
    if (!to) return Promise.resolve({ ok: false, latency_ms: 0, error: 'INVALID_URL' });
    return new Promise((resolve) => {
      const check = new HttpCheck(started, started + timeoutMs, this.deadlines, resolve);
      this.deadlines.add(check);
      this.agents[guard ?? 'none'].dispatch(
        {
          origin: to.origin,
          path: to.path,
          method: 'GET',
          headers: CHECK_HEADERS,
          // Only a backstop behind the deadline: at 1 s and more undici keeps these on its own
          // shared coarse timer, under 1 s each would be one more native timer per check.
          headersTimeout: timeoutMs + UNDICI_BACKSTOP_MS,
          bodyTimeout: timeoutMs + UNDICI_BACKSTOP_MS,
        },
        check,
      );
    });
  }

  private destinationOf(url: string): Destination | undefined {
    let to = this.destinations.get(url);
    if (to) return to;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return undefined;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    // Targets come and go; a bound keeps a long-lived monitor from remembering every URL it ever checked.
    if (this.destinations.size >= MAX_REMEMBERED_URLS) this.destinations.clear();
    to = { origin: u.origin, path: `${u.pathname}${u.search}` };
    this.destinations.set(url, to);
    return to;
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.agents).map((a) => a.close()));
  }
}

interface Destination {
  origin: string;
  path: string;
}

const CHECK_HEADERS = { 'user-agent': 'droplet-mesh-health-monitor' };
const UNDICI_BACKSTOP_MS = 1000;
const MAX_REMEMBERED_URLS = 50_000;

/** One check in flight: undici's handler for its response, and an entry of the deadline queue. */
class HttpCheck implements Dispatcher.DispatchHandler, Deadline {
  prevDeadline?: Deadline;
  nextDeadline?: Deadline;
  queued?: boolean;
  private controller?: Dispatcher.DispatchController;
  private statusCode = 0;
  private timedOut?: Error;
  private settled = false;

  constructor(
    private readonly started: number,
    readonly deadlineAt: number,
    private readonly deadlines: DeadlineQueue,
    private readonly resolve: (o: CheckOutcome) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Timed out while it waited for a connection: it is not sent.
    if (this.timedOut) controller.abort(this.timedOut);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number): void {
    this.statusCode = statusCode;
  }

  onResponseData(): void {
    // The body is read to its end, so the connection stays reusable, and dropped.
  }

  onResponseEnd(): void {
    const status = this.statusCode;
    const ok = status >= 200 && status < 400;
    this.settle(
      ok
        ? { ok, latency_ms: this.elapsed(), status_code: status }
        : { ok, latency_ms: this.elapsed(), status_code: status, error: `HTTP ${status}` },
    );
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.settle({ ok: false, latency_ms: this.elapsed(), error: describeNetworkError(err) });
  }

  expire(): void {
    this.timedOut = Object.assign(new Error('check timed out'), { name: 'TimeoutError' });
    this.settle({ ok: false, latency_ms: this.elapsed(), error: 'timeout' });
    this.controller?.abort(this.timedOut);
  }

  private settle(outcome: CheckOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.deadlines.remove(this);
    this.resolve(outcome);
  }

  private elapsed(): number {
    return Math.round((performance.now() - this.started) * 10) / 10;
  }
}

function describeNetworkError(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT')
    return 'timeout';
  return e.code ?? e.cause?.code ?? e.name ?? 'error';
}
