// Local *servers* (not local instances): each one a real Docker Engine of its own on this
// machine — dockerd in its own network namespace, reachable only at tcp://<address>:<port>
// over mutual TLS with the certificate the deployer issued — so the deployer uses it exactly
// as it uses a cloud server. It replaces cloud-init for the local provider: it starts the
// engine with the user_data's TLS material and sends the same ready report the user_data's
// script would. Why a namespaced dockerd rather than a privileged container: no image has
// to be built (nothing can be pulled here), the host's own dockerd/containerd/runc binaries
// run unchanged, and killing the engine is killing processes, as losing a machine is.
// The engines live as long as this process (they are torn down when it exits).
import { X509Certificate } from 'node:crypto';
import { namespacedEngineUnavailable, startNamespacedEngine, type NamespacedEngine } from '@droplet-mesh/docker-testing';
import { Conflict, Unprocessable, type Logger } from '@droplet-mesh/udc-kit';
import type { Instance } from '../cloud-provider.js';

export interface LocalServerInput {
  name: string;
  serverId: string;
  enginePort: number;
  tls: { ca: string; cert: string; key: string };
  callbackUrl: string;
  callbackToken: string;
}

export interface LocalServersOptions {
  logger: Logger;
  /** How long the engine may take to answer (default 60 s). */
  startTimeoutMs?: number;
  /** Told when the ready report could not be delivered. */
  onReportFailed?: (serverId: string, reason: string) => void;
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

export class LocalServers {
  private engines = new Map<string, { engine: NamespacedEngine; instance: Instance }>();
  private starting = new Set<string>();
  constructor(private readonly opts: LocalServersOptions) {}

  /** Why local servers cannot be made here, or undefined. */
  unavailable(): string | undefined {
    return namespacedEngineUnavailable();
  }

  async create(input: LocalServerInput): Promise<Instance> {
    const why = this.unavailable();
    if (why) throw new Unprocessable(`the local provider cannot make a real server on this machine: ${why}`, { provider: 'local' });
    if (this.engines.has(input.name) || this.starting.has(input.name)) throw new Conflict(`local server '${input.name}' exists`);
    this.starting.add(input.name);
    let engine: NamespacedEngine;
    try {
      engine = await startNamespacedEngine({
        tls: input.tls,
        port: input.enginePort,
        startTimeoutMs: this.opts.startTimeoutMs ?? 60_000,
      });
    } finally {
      this.starting.delete(input.name);
    }
    const instance: Instance = {
      id: `local:${engine.netns}`,
      provider: 'local',
      provider_id: engine.netns,
      name: input.name,
      status: 'running',
      raw_status: 'engine running',
      ipv4: engine.address,
      ipv6: null,
      private_ip: engine.address,
      region: 'local',
      size: null,
      image: null,
      tags: ['droplet-mesh', 'mesh-server'],
      labels: { 'mesh-server': input.serverId },
      created_at: new Date().toISOString(),
      price_monthly: 0,
      managed: true,
    };
    this.engines.set(input.name, { engine, instance });
    // What the user_data's report script does on a cloud server, once the engine answers.
    void this.report(engine, input).catch((err) => {
      this.opts.logger.warn({ server_id: input.serverId, reason: (err as Error).message }, 'local server: ready report failed');
      this.opts.onReportFailed?.(input.serverId, (err as Error).message);
    });
    return instance;
  }

  private async report(engine: NamespacedEngine, input: LocalServerInput): Promise<void> {
    const version = (await engine.docker.version()).Version;
    const body = JSON.stringify({
      server_id: input.serverId,
      address: engine.address,
      engine_port: engine.port,
      docker_version: version,
      certificate_sha256: fingerprint(input.tls.cert),
    });
    let last = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const res = await fetch(input.callbackUrl, {
          method: 'POST',
          headers: { authorization: `Bearer ${input.callbackToken}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(20_000),
        });
        if (res.ok) return;
        last = `HTTP ${res.status}`;
        if (res.status < 500) break; // refused: retrying the same report will not help
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
    throw new Error(`the deployer did not accept the ready report (${last})`);
  }

  get(name: string): Instance | undefined {
    return this.engines.get(name)?.instance;
  }

  byProviderId(id: string): { name: string; instance: Instance } | undefined {
    for (const [name, e] of this.engines) if (e.instance.provider_id === id) return { name, instance: e.instance };
    return undefined;
  }

  list(): Instance[] {
    return [...this.engines.values()].map((e) => e.instance);
  }

  /** Stop the engine and remove everything it had. */
  async delete(name: string): Promise<boolean> {
    const e = this.engines.get(name);
    if (!e) return false;
    this.engines.delete(name);
    await e.engine.stop();
    return true;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.engines.keys()].map((n) => this.delete(n)));
  }
}
