import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The provider OpenAPI files shipped with this package (`openapi/`), unless `CLOUD_OPENAPI_DIR` or an explicit directory says otherwise. */
export function resolveOpenapiDir(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.CLOUD_OPENAPI_DIR) return resolve(process.env.CLOUD_OPENAPI_DIR);
  // src/core/spec-dir.ts and dist/core/spec-dir.js are both two levels below the package root.
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'openapi');
}
