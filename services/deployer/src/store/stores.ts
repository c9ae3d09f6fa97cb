import type { KV } from '@nats-io/kv';
import type { Deployment, DeployConfig, Environment, Placement, Project, Release, Server, Service } from '../domain/model.js';
import type { SealedSecret } from '../domain/secrets-crypto.js';
import type { RegistryCredentialRecord } from '../registry/registry-credentials.js';
import { KvCollection } from './kv-collection.js';
import { LaneStore } from './lane-store.js';

export interface SecretRecord {
  project: string;
  environment: string;
  name: string;
  sealed: SealedSecret;
  updated_at: string;
}

/** The index of deployments not yet final: what recovery reads instead of the whole history. */
export interface OpenDeploymentEntry {
  id: string;
  target_id: string;
  owner: string;
  created_at: string;
}

/** One replica's claim to restart a container that died (`crash-claim.<container>-<time>`, purged a minute later). */
export interface CrashClaim {
  container_id: string;
  owner: string;
  claimed_at: string;
}

/** Markers of one-time bucket migrations. */
export interface MigrationMarker {
  done_at: string;
  by: string;
}

/** Every record the deployer keeps, in one JetStream KV bucket, one key prefix per kind. */
export function createStores(kv: KV) {
  return {
    projects: new KvCollection<Project>(kv, 'project'),
    services: new KvCollection<Service>(kv, 'service'),
    environments: new KvCollection<Environment>(kv, 'environment'),
    servers: new KvCollection<Server>(kv, 'server'),
    placements: new KvCollection<Placement>(kv, 'placement'),
    secrets: new KvCollection<SecretRecord>(kv, 'secret'),
    deployConfigs: new KvCollection<DeployConfig>(kv, 'deployconfig'),
    deployments: new KvCollection<Deployment>(kv, 'deployment'),
    /** `open-deployment.<id>` while a deployment is queued or running (written before it, purged after it ends). */
    openDeployments: new KvCollection<OpenDeploymentEntry>(kv, 'open-deployment'),
    migrations: new KvCollection<MigrationMarker>(kv, 'migration'),
    crashClaims: new KvCollection<CrashClaim>(kv, 'crash-claim'),
    releases: new KvCollection<Release>(kv, 'release'),
    /** Sealed pull credentials per image registry host (`registry-credentials.<host, base64url>`). */
    registryCredentials: new KvCollection<RegistryCredentialRecord>(kv, 'registry-credentials'),
    /** One project's sealed pull credentials (`project-registry-credentials.<project>.<host, base64url>`), tried before the mesh-wide ones. */
    projectRegistryCredentials: new KvCollection<RegistryCredentialRecord>(kv, 'project-registry-credentials'),
    /** Per-service deploy queues and leases, shared by every replica. */
    lanes: new LaneStore(kv),
  };
}
export type Stores = ReturnType<typeof createStores>;
