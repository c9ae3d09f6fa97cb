// The mesh's servers as targets: each server's Docker Engine, checked with GET /_ping over
// mutual TLS (checks/engine-probe.ts) under the same quorum as apps. The deployer says which
// engines there are (UDC query `servers.engines`). An engine declared down opens one incident
// like any target; the deployer follows `incident.opened` for these ids and moves the
// server's replicas elsewhere, so the recovery here is only to tell a person.
import type { DropletContext } from '@droplet-mesh/udc-kit';
import type { Target } from '../domain/types.js';
import type { TargetSource } from './target-source.js';

/** Target ids of server engines: the deployer recognizes them by this prefix. */
export const SERVER_TARGET_PREFIX = 'server-engine-';

export interface EngineEndpoint {
  server_id: string;
  host: string;
  port: number;
  /** The name the engine's certificate carries (its identity, not always its address). */
  servername: string;
}

/** Which check URLs are engines (and the name each must prove), shared by the source and the probe. */
export class EngineDirectory {
  private byOrigin = new Map<string, EngineEndpoint>();
  set(engines: EngineEndpoint[]): void {
    this.byOrigin = new Map(engines.map((e) => [originOf(e), e]));
  }
  lookup(url: string): EngineEndpoint | undefined {
    // Asked for every check: no URL parse when there are no engines to find.
    if (this.byOrigin.size === 0) return undefined;
    try {
      return this.byOrigin.get(new URL(url).origin);
    } catch {
      return undefined;
    }
  }
}

const originOf = (e: EngineEndpoint) => new URL(`https://${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`).origin;

export class ServerEngineSource implements TargetSource {
  private everListed = false;
  constructor(
    private readonly send: DropletContext['send'],
    private readonly directory: EngineDirectory,
    /** Engines are checked only with a client certificate at hand (else every one would look down). */
    private readonly canCheck: () => Promise<boolean>,
  ) {}

  async list(): Promise<Target[]> {
    let reply: Awaited<ReturnType<DropletContext['send']>>;
    try {
      reply = await this.send({
        target: 'deployer',
        message_type: 'query',
        payload: { action: 'servers.engines' },
        timeout_ms: 5000,
        retry_count: 0,
      });
      if (reply.result !== 'success') throw new Error(reply.error?.message ?? reply.result);
    } catch (err) {
      // No deployer in this mesh (yet): no servers to check. Once it answered, keep the last list.
      if (!this.everListed) return [];
      throw err;
    }
    this.everListed = true;
    const engines = ((reply.data as { engines?: EngineEndpoint[] } | undefined)?.engines ?? []).filter(
      (e) => /^[a-z0-9][a-z0-9-]{0,62}$/.test(e.server_id) && Number.isInteger(e.port),
    );
    if (engines.length > 0 && !(await this.canCheck()))
      throw new Error(
        'no client certificate of the mesh CA for engine checks: the deployer gives one to the health-monitor droplet or an admin',
      );
    this.directory.set(engines);
    return engines.map((e) => ({
      id: `${SERVER_TARGET_PREFIX}${e.server_id}`,
      kind: 'host' as const,
      url: originOf(e),
      health_path: '/_ping',
      recovery: ['alert' as const],
      metadata: { mesh_server: e.server_id },
      source: 'deployer' as const,
    }));
  }

  async lookup(id: string): Promise<Target | null> {
    if (!id.startsWith(SERVER_TARGET_PREFIX)) return null;
    return (await this.list()).find((t) => t.id === id) ?? null;
  }
}
