import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the provider OpenAPI files live: `CLOUD_OPENAPI_DIR`, else `../shared/openapi`
 * relative to the repo root (the directory holding pnpm-workspace.yaml), found by walking up from this file.
 */
export function resolveOpenapiDir(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.CLOUD_OPENAPI_DIR) return resolve(process.env.CLOUD_OPENAPI_DIR);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return resolve(dir, '..', 'shared', 'openapi');
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cloud-emulators: cannot find the repo root (pnpm-workspace.yaml) to locate ../shared/openapi; set CLOUD_OPENAPI_DIR');
    dir = parent;
  }
}
