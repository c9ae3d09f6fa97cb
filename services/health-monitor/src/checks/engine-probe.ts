// Checks of server engines: GET /_ping over mutual TLS with a client certificate of the mesh
// CA, which the deployer issues to this monitor for a day (UDC `mesh-ca.monitor-certificate`,
// admin) and which is asked again when half of it is gone. The engine must present a
// certificate of the mesh CA naming its server's identity. Other URLs go to the usual probe.
import { request } from 'node:https';
import type { DropletContext } from '@droplet-mesh/udc-kit';
import type { EngineDirectory, EngineEndpoint } from '../targets/server-engines.js';
import type { CheckGuard, CheckOutcome, HttpProbe } from './http-checker.js';

interface ClientCert {
  ca: string;
  cert: string;
  key: string;
  expires_at: string;
  fetched_at: number;
}

/** This monitor's client certificate of the mesh CA, fetched from the deployer and renewed at half its life. */
export class MonitorCertificate {
  private cert: Promise<ClientCert> | undefined;
  constructor(private readonly send: DropletContext['send']) {}

  get(): Promise<ClientCert> {
    const stale = (c: ClientCert) => Date.now() > c.fetched_at + (Date.parse(c.expires_at) - c.fetched_at) / 2;
    const current = this.cert;
    if (current) {
      return current.then((c) => {
        if (!stale(c)) return c;
        if (this.cert === current) this.cert = undefined;
        return this.get();
      });
    }
    const fetching = this.fetch();
    this.cert = fetching;
    fetching.catch(() => {
      if (this.cert === fetching) this.cert = undefined;
    });
    return fetching;
  }

  /** Whether engines can be checked at all: without a certificate their failures would prove nothing. */
  usable(): Promise<boolean> {
    return this.get().then(
      () => true,
      () => false,
    );
  }

  private async fetch(): Promise<ClientCert> {
    const reply = await this.send({
      target: 'deployer',
      message_type: 'command',
      payload: { action: 'mesh-ca.monitor-certificate' },
      timeout_ms: 10_000,
      retry_count: 1,
    });
    if (reply.result !== 'success') throw new Error(`no client certificate from the deployer: ${reply.error?.message ?? reply.result}`);
    return { ...(reply.data as Omit<ClientCert, 'fetched_at'>), fetched_at: Date.now() };
  }
}

export class EngineProbe implements HttpProbe {
  constructor(
    private readonly base: HttpProbe,
    private readonly engines: EngineDirectory,
    private readonly certificate: MonitorCertificate,
  ) {}

  get(url: string, timeoutMs: number, guard?: CheckGuard): Promise<CheckOutcome> {
    const engine = this.engines.lookup(url);
    return engine ? this.getEngine(engine, timeoutMs) : this.base.get(url, timeoutMs, guard);
  }

  private async getEngine(engine: EngineEndpoint, timeoutMs: number): Promise<CheckOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    let tls: ClientCert;
    try {
      tls = await this.certificate.get();
    } catch {
      // Rare: the source lists engines only while a certificate is at hand.
      return { ok: false, latency_ms: elapsed(), error: 'NO_CLIENT_CERTIFICATE' };
    }
    return ping(engine, tls, timeoutMs).then(
      (status) => ({
        ok: status === 200,
        latency_ms: elapsed(),
        status_code: status,
        ...(status === 200 ? {} : { error: `HTTP ${status}` }),
      }),
      (err: NodeJS.ErrnoException) => ({
        ok: false,
        latency_ms: elapsed(),
        error: err.code ?? (err.name === 'TimeoutError' ? 'timeout' : 'error'),
      }),
    );
  }

  close(): Promise<void> {
    return this.base.close();
  }
}

function ping(e: EngineEndpoint, tls: ClientCert, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: e.host,
        port: e.port,
        path: '/_ping',
        method: 'GET',
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        servername: e.servername,
        agent: false,
        signal: AbortSignal.timeout(timeoutMs),
        headers: { 'user-agent': 'droplet-mesh-health-monitor' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => reject(err.name === 'AbortError' ? Object.assign(new Error('timeout'), { code: 'timeout' }) : err));
    req.end();
  });
}
