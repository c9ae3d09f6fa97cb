// Pull credentials for private image registries, one per registry host (mesh-wide, or one
// project's), sealed with DEPLOYER_MASTER_KEY (the host and project are bound as additional
// data: a record cannot be moved to another host or project). The API lists hosts only; the username and password never leave sealed
// storage except as the authconfig of a pull.
import { z } from 'zod';
import { openSecret, sealSecret, type SealedSecret } from '../domain/secrets-crypto.js';
import type { KvCollection } from '../store/kv-collection.js';
import { REGISTRY_HOST_PATTERN } from './image-ref.js';
import type { RegistryAuth } from './mesh-registry.js';

export const registryHostParam = z
  .string()
  .max(260)
  .regex(REGISTRY_HOST_PATTERN, 'must be a registry host[:port], e.g. registry.example.com or 10.0.0.5:5000');

export const registryCredentialsInput = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(8192),
});

export interface RegistryCredentialRecord {
  host: string;
  sealed: SealedSecret;
  created_at: string;
  updated_at: string;
}

/** What the API shows: the host and when, nothing sealed. */
export const publicView = (r: RegistryCredentialRecord) => ({ host: r.host, created_at: r.created_at, updated_at: r.updated_at });

/** KV key tokens cannot hold dots or colons: the host is kept encoded in the key, clear in the record. */
export const hostKey = (host: string) => Buffer.from(host.toLowerCase()).toString('base64url');

/** The username a record holds (a project's listing shows it; the password never leaves the seal). */
export const projectView = (r: RegistryCredentialRecord, username: string) => ({ ...publicView(r), username });

/** Mesh-wide credentials (`project` undefined, keyed by host) or one project's (keyed by project, host). */
export class RegistryCredentials {
  constructor(
    private store: KvCollection<RegistryCredentialRecord>,
    private masterKey: Buffer,
    private project?: string,
  ) {}

  private parts(host: string): string[] {
    return this.project ? [this.project, hostKey(host)] : [hostKey(host)];
  }

  private context(host: string): string {
    return this.project ? `registry/${this.project}/${host.toLowerCase()}` : `registry/${host.toLowerCase()}`;
  }

  async put(host: string, input: z.infer<typeof registryCredentialsInput>): Promise<RegistryCredentialRecord> {
    const now = new Date().toISOString();
    const existing = await this.store.get(...this.parts(host));
    const record: RegistryCredentialRecord = {
      host: host.toLowerCase(),
      sealed: sealSecret(this.masterKey, JSON.stringify(input), this.context(host)),
      created_at: existing?.created_at ?? now,
      updated_at: now,
    };
    await this.store.put(this.parts(host), record);
    return record;
  }

  async list(): Promise<RegistryCredentialRecord[]> {
    return (await (this.project ? this.store.list(this.project) : this.store.list())).sort((a, b) => a.host.localeCompare(b.host));
  }

  async get(host: string): Promise<RegistryCredentialRecord | undefined> {
    return this.store.get(...this.parts(host));
  }

  async delete(host: string): Promise<boolean> {
    if (!(await this.store.get(...this.parts(host)))) return false;
    await this.store.delete(...this.parts(host));
    return true;
  }

  /** The authconfig for a pull from `host`, or undefined when none is stored. */
  async authFor(host: string): Promise<RegistryAuth | undefined> {
    const r = await this.store.get(...this.parts(host));
    return r ? this.open(r) : undefined;
  }

  /** The record's username, for a project's listing. */
  usernameOf(r: RegistryCredentialRecord): string {
    return this.open(r).username;
  }

  private open(r: RegistryCredentialRecord): RegistryAuth {
    const { username, password } = JSON.parse(openSecret(this.masterKey, r.sealed, this.context(r.host))) as {
      username: string;
      password: string;
    };
    return { username, password, serveraddress: r.host };
  }
}

/** Whether any project holds credentials for `host`: its images are private, a local copy must be re-authorized by a pull. */
export async function projectsHoldCredentialsFor(store: KvCollection<RegistryCredentialRecord>, host: string): Promise<boolean> {
  return (await store.list()).some((r) => r.host === host.toLowerCase());
}
