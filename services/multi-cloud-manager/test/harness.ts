// Boots the real droplet for API tests: real nats-server, the three cloud emulators over
// HTTP, optionally the real Docker Engine, a test JWT authority and a recording registry link.
import type Docker from 'dockerode';
import { startAllEmulators, type AllEmulators } from '@droplet-mesh/cloud-emulators';
import { ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import type { RegistryLink, RegistryRecordInput, Scope } from '@droplet-mesh/udc-kit';
import { startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import { createMultiCloudDroplet } from '../src/app.js';
import { captureLogs } from './helpers.js';

export const CLOUD_TOKEN = 'cloud-SECRET-token-5f0e9d8c7b6a';

export interface RecordingRegistry extends RegistryLink {
  hosts: Map<string, RegistryRecordInput>;
}

export function recordingRegistry(): RecordingRegistry {
  const hosts = new Map<string, RegistryRecordInput>();
  return {
    hosts,
    start() {},
    async stop() {},
    status: () => ({ reachable: true, registered: true }),
    async upsertRecord(r) {
      hosts.set(r.id, r);
      return {
        ...r,
        name: r.name ?? r.id,
        capabilities: [],
        steward: 'multi-cloud-manager',
        status: 'active',
        registered_at: new Date().toISOString(),
      } as never;
    },
    async removeRecord(id) {
      hosts.delete(id);
    },
    async list() {
      return [];
    },
    async get() {
      return undefined;
    },
    async token() {
      return 'x';
    },
  };
}

export interface Harness {
  droplet: ReturnType<typeof createMultiCloudDroplet>;
  emus: AllEmulators;
  nats: NatsServerHandle;
  authority: TestAuthority;
  registry: RecordingRegistry;
  docker?: Docker;
  image?: string;
  /** The droplet's HTTP port on 127.0.0.1. */
  port: number;
  logs: ReturnType<typeof captureLogs>;
  auth(scopes?: Scope[]): { Authorization: string };
  close(): Promise<void>;
}

export async function startHarness(
  opts: { docker?: boolean; seedInstances?: number; env?: Record<string, string> } = {},
): Promise<Harness> {
  const nats = await startNatsServer();
  const authority = await startTestAuthority();
  const emus = await startAllEmulators({ token: CLOUD_TOKEN, seedInstances: opts.seedInstances ?? 3, actionDurationMs: 150 });
  const docker = opts.docker ? await ensureDockerEngine() : undefined;
  const image = docker ? await ensureBusyboxImage(docker) : undefined;
  const registry = recordingRegistry();
  const logs = captureLogs();
  const droplet = createMultiCloudDroplet({
    env: {
      PORT: '0',
      NATS_URL: nats.url,
      LOG_LEVEL: 'debug',
      ...authority.env(),
      DO_TOKEN: CLOUD_TOKEN,
      HETZNER_TOKEN: CLOUD_TOKEN,
      VULTR_TOKEN: CLOUD_TOKEN,
      DO_API_URL: emus.digitalocean.apiUrl,
      HETZNER_API_URL: emus.hetzner.apiUrl,
      VULTR_API_URL: emus.vultr.apiUrl,
      LOCAL_PROVIDER_ENABLED: docker ? 'true' : 'false',
      ACTION_POLL_INTERVAL_MS: '50',
      ACTION_WAIT_TIMEOUT_S: '10',
      PROVIDER_LIST_TIMEOUT_MS: '5000',
      PROVIDER_TIMEOUT_MS: '3000',
      ...opts.env,
    },
    docker,
    registry,
    logDestination: logs.stream,
  });
  const { port } = await droplet.start();
  return {
    droplet,
    emus,
    nats,
    authority,
    registry,
    docker,
    image,
    port,
    logs,
    auth: (scopes = ['read', 'write']) => ({ Authorization: `Bearer ${authority.mint({ scopes })}` }),
    async close() {
      await droplet.stop();
      await emus.close();
      await authority.close();
      await nats.stop({ removeStore: true });
    },
  };
}
