import { z } from 'zod';
import { baseConfigShape } from '@droplet-mesh/udc-kit';

const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
    .optional()
    .transform((v) => (v === undefined || v === '' ? fallback : v === 'true' || v === '1' || v === 'yes'));

/** An unset or empty token means "provider not configured", never an error. */
const token = z
  .string()
  .optional()
  .transform((v) => (v && v.trim() ? v.trim() : undefined));

const ms = (fallback: number, min = 50) => z.coerce.number().int().min(min).max(3_600_000).default(fallback);

export const configSchema = z.object({
  ...baseConfigShape,
  PORT: baseConfigShape.PORT.default(8010),
  DO_TOKEN: token,
  HETZNER_TOKEN: token,
  VULTR_TOKEN: token,
  DO_API_URL: z.url().default('https://api.digitalocean.com'),
  HETZNER_API_URL: z.url().default('https://api.hetzner.cloud/v1'),
  VULTR_API_URL: z.url().default('https://api.vultr.com/v2'),
  LOCAL_PROVIDER_ENABLED: flag(true),
  DOCKER_HOST: z
    .string()
    .regex(/^(unix|tcp|http|https):\/\/\S+$/, 'must be unix:///path or tcp://host:port')
    .optional(),
  /**
   * The Docker bridge network local instances run on (created, labelled mesh.managed=true,
   * if missing; a network of that name the mesh did not create is refused).
   */
  LOCAL_NETWORK: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be a Docker network name')
    .refine((v) => !['host', 'bridge', 'none', 'default'].includes(v), "must not be one of Docker's own networks")
    .default('mesh-instances'),
  /**
   * Images a `write` caller may create local instances from (comma-separated references),
   * besides snapshots of the mesh's own instances. Any other local image needs `admin`.
   */
  LOCAL_CATALOG_IMAGES: z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$/, 'must be image references, comma-separated')).max(100)),
  /** Timeout of one provider HTTP call. */
  PROVIDER_TIMEOUT_MS: ms(15_000),
  /** Deadline for one provider's whole listing (all pages) in /multi/list and /instances. */
  PROVIDER_LIST_TIMEOUT_MS: ms(30_000),
  /**
   * Most pages one provider listing reads. A listing that needs more (or reports a total that
   * would) stops with DEPENDENCY_UNAVAILABLE instead of paging on; so does one whose cursor or
   * page link repeats.
   */
  PROVIDER_MAX_PAGES: z.coerce.number().int().min(1).max(100_000).default(1000),
  CATALOG_TTL_S: z.coerce.number().int().min(0).max(86_400).default(3600),
  ACTION_POLL_INTERVAL_MS: ms(2000, 10),
  ACTION_WAIT_TIMEOUT_S: z.coerce.number().int().min(1).max(3600).default(600),
  IDEMPOTENCY_TTL_S: z.coerce
    .number()
    .int()
    .min(60)
    .max(7 * 86_400)
    .default(86_400),
  /**
   * Vultr answers 429 above about 30 requests/s; stay under it client-side, with one limit per
   * account shared by every concurrent call of this process (DigitalOcean and Hetzner pace by
   * their rate-limit headers instead).
   */
  VULTR_MAX_RPS: z.coerce.number().int().min(1).max(29).default(25),
});
export type Config = z.infer<typeof configSchema>;
