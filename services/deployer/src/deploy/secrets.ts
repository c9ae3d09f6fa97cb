import { openSecret, sealSecret } from '../domain/secrets-crypto.js';
import type { Stores } from '../store/stores.js';

export const secretContext = (project: string, environment: string, name: string) => `${project}/${environment}/${name}`;

export async function putSecret(
  stores: Stores,
  key: Buffer,
  project: string,
  environment: string,
  name: string,
  value: string,
): Promise<void> {
  await stores.secrets.put([project, environment, name], {
    project,
    environment,
    name,
    sealed: sealSecret(key, value, secretContext(project, environment, name)),
    updated_at: new Date().toISOString(),
  });
}

/** Decrypted secrets of one project/environment, for container environments only. */
export async function openSecrets(stores: Stores, key: Buffer, project: string, environment: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const s of await stores.secrets.list(project, environment))
    out[s.name] = openSecret(key, s.sealed, secretContext(project, environment, s.name));
  return out;
}
