import { z } from 'zod';
import { baseConfigShape } from '@droplet-mesh/udc-kit';

export const registryConfigSchema = z.object({
  ...baseConfigShape,
  PORT: baseConfigShape.PORT.default(8000),
  REGISTRY_ADMIN_KEY: z.string().min(16, 'must be at least 16 characters'),
  TOKEN_TTL_S: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .default(3600),
  /** Liveness is evaluated this often. */
  LIVENESS_TICK_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
  STALE_AFTER_MISSED: z.coerce.number().int().min(1).default(3),
  DOWN_AFTER_MISSED: z.coerce.number().int().min(2).default(10),
  /** Token requests per client address per minute, and failed ones. */
  AUTH_RATE_LIMIT_PER_MIN: z.coerce.number().int().min(1).default(60),
  AUTH_FAILURE_LIMIT_PER_MIN: z.coerce.number().int().min(1).default(10),
  /** Records the registry holds; a new id beyond it is refused (409), updates are not. */
  REGISTRY_MAX_RECORDS: z.coerce.number().int().min(1).default(10_000),
  /** Records one droplet may steward (hosts, apps) with its token; admins are not limited by it. */
  REGISTRY_MAX_RECORDS_PER_STEWARD: z.coerce.number().int().min(1).default(1000),
  /** A token with an unknown kid re-reads the key bucket at most this often. */
  KEY_RELOAD_MIN_INTERVAL_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
});
export type RegistryConfig = z.infer<typeof registryConfigSchema>;
