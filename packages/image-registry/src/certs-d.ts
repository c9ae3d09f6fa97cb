import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where a Docker Engine looks for the CA of a registry it pulls from over TLS. */
export const DOCKER_CERTS_DIR = '/etc/docker/certs.d';

/**
 * Make an engine on this machine trust `ca` for the registry at host:port only
 * (`<certsDir>/<host:port>/ca.crt`, read by the engine at each pull; no restart). Returns
 * the undo. A remote server gets the same file from its bootstrap.
 */
export function trustRegistryCa(host: string, ca: string, certsDir = DOCKER_CERTS_DIR): () => void {
  if (!/^[A-Za-z0-9.[\]:-]{1,260}$/.test(host)) throw new Error(`'${host}' is not a registry host:port`);
  const dir = join(certsDir, host);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca.crt'), ca);
  return () => rmSync(dir, { recursive: true, force: true });
}
