// Pull credentials for private image registries, one per registry host, sealed with
// DEPLOYER_MASTER_KEY (the host is bound as additional data: a record cannot be moved to
// another host). The API lists hosts only; the username and password never leave sealed
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
const context = (host: string) => `registry/${host.toLowerCase()}`;

export class RegistryCredentials {
  constructor(
    private store: KvCollection<RegistryCredentialRecord>,
    private masterKey: Buffer,
  ) {}

  async put(host: string, input: z.infer<typeof registryCredentialsInput>): Promise<RegistryCredentialRecord> {
    const now = new Date().toISOString();
    const existing = await this.store.get(hostKey(host));
    const record: RegistryCredentialRecord = {
      host: host.toLowerCase(),
      sealed: sealSecret(this.masterKey, JSON.stringify(input), context(host)),
      created_at: existing?.created_at ?? now,
      updated_at: now,
    };
    await this.store.put([hostKey(host)], record);
    return record;
  }

  async list(): Promise<RegistryCredentialRecord[]> {
    return (await this.store.list()).sort((a, b) => a.host.localeCompare(b.host));
  }

  async get(host: string): Promise<RegistryCredentialRecord | undefined> {
    return this.store.get(hostKey(host));
  }

  async delete(host: string): Promise<boolean> {
    if (!(await this.store.get(hostKey(host)))) return false;
    await this.store.delete(hostKey(host));
    return true;
  }

  /** The authconfig for a pull from `host`, or undefined when none is stored. */
  async authFor(host: string): Promise<RegistryAuth | undefined> {
    const r = await this.store.get(hostKey(host));
    if (!r) return undefined;
    const { username, password } = JSON.parse(openSecret(this.masterKey, r.sealed, context(host))) as {
      username: string;
      password: string;
    };
    return { username, password, serveraddress: host.toLowerCase() };
  }
}
