import { z } from 'zod';
import { addressAllowListSetting, baseConfigShape } from '@droplet-mesh/udc-kit';

const port = (fallback: number) => z.coerce.number().int().min(1).max(65535).default(fallback);
const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
    .optional()
    .transform((v) => (v === undefined || v === '' ? fallback : v === 'true' || v === '1' || v === 'yes'));

export const proxyManagerConfigSchema = z
  .object({
    ...baseConfigShape,
    PORT: baseConfigShape.PORT.default(8100),
    NGINX_BIN: z.string().min(1).default('/usr/sbin/nginx'),
    /** Defaults to `${DATA_DIR}/nginx`. */
    NGINX_PREFIX: z.string().min(1).optional(),
    /** Defaults to `${NGINX_PREFIX}/sites-available` and `.../sites-enabled`. */
    NGINX_SITES_AVAILABLE: z.string().min(1).optional(),
    NGINX_SITES_ENABLED: z.string().min(1).optional(),
    /** Run and supervise our own nginx master (false: someone else runs it; we only test and signal). */
    NGINX_MANAGE: bool(true),
    /**
     * auto: upstream members switch through a Lua balancer without a reload when Debian's
     * libnginx-mod-http-lua and lua-resty-core are there (else reloads, said in the log); off: always reload.
     */
    NGINX_LUA: z.enum(['auto', 'off']).default('auto'),
    NGINX_MODULES_DIR: z.string().min(1).default('/usr/lib/nginx/modules'),
    PROXY_HTTP_PORT: port(8080),
    PROXY_HTTPS_PORT: port(8443),
    PROXY_LISTEN_ADDRESS: z.union([z.ipv4(), z.ipv6(), z.literal('*')]).default('127.0.0.1'),
    /** Port clients see for HTTPS (used in the HTTP→HTTPS redirect); defaults to PROXY_HTTPS_PORT. */
    PROXY_PUBLIC_HTTPS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
    ROUTES_BUCKET: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .default('routes'),
    ACME_BUDGET_BUCKET: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .default('acme-budget'),
    /** Issued certificates and keys shared between replicas (and the issuing lease). */
    CERT_BUCKET: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .default('certificates'),
    /**
     * 32 bytes, base64 or hex: seals private keys (AES-256-GCM) before they go into CERT_BUCKET.
     * Without it keys are shared unsealed (a warning at start). Same value on every replica.
     */
    CERT_ENCRYPTION_KEY: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined || v === '') return undefined;
        const key = /^[0-9a-fA-F]{64}$/.test(v) ? Buffer.from(v, 'hex') : Buffer.from(v, 'base64');
        if (key.length !== 32) {
          ctx.addIssue({ code: 'custom', message: 'must be 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)' });
          return z.NEVER;
        }
        return key;
      }),
    /** Unset: Let's Encrypt production, or its staging directory with ACME_STAGING=true (see acmeDirectoryUrl). */
    ACME_DIRECTORY_URL: z
      .union([z.url(), z.literal('')])
      .optional()
      .transform((v) => v || undefined),
    ACME_STAGING: bool(false),
    ACME_EMAIL: z.email().optional(),
    /** PEM bundle trusted for the ACME directory's TLS (a private CA such as pebble's). */
    ACME_CA_BUNDLE: z.string().min(1).optional(),
    RENEW_BEFORE_DAYS: z.coerce.number().positive().default(30),
    RENEW_CHECK_INTERVAL_S: z.coerce
      .number()
      .positive()
      .default(6 * 3600),
    /**
     * host:port exceptions to the upstream address policy (link-local and cloud metadata
     * addresses and the mesh's own ports on loopback are refused): e.g. `127.0.0.1:8000,[fe80::1]:80`.
     */
    UPSTREAM_ALLOW: addressAllowListSetting,
    UPSTREAM_HEALTH_TIMEOUT_MS: z.coerce.number().int().min(50).max(60_000).default(2000),
    /** Background re-check of upstream health and DNS (0 disables). */
    UPSTREAM_RECHECK_INTERVAL_S: z.coerce.number().min(0).default(30),
    DNS_TIMEOUT_MS: z.coerce.number().int().min(50).max(30_000).default(2000),
    /** Changes arriving within this window share one `nginx -t` and one reload. */
    RECONCILE_COALESCE_MS: z.coerce.number().int().min(0).max(5000).default(25),
    /** Changes other replicas write are applied once they have been quiet this long (bursts → one reload). */
    REPLICA_SYNC_QUIET_MS: z.coerce.number().int().min(0).max(10_000).default(100),
    NGINX_RELOAD_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  })
  .refine((c) => !c.ALLOW_SIMPLE_TOKEN || !!c.API_TOKEN, {
    message: 'API_TOKEN is required when ALLOW_SIMPLE_TOKEN=true',
    path: ['API_TOKEN'],
  });

export type ProxyManagerConfig = z.infer<typeof proxyManagerConfigSchema>;

export const LETS_ENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/** ACME_DIRECTORY_URL when set (pebble, another CA), else Let's Encrypt: production, or staging with ACME_STAGING. */
export function acmeDirectoryUrl(c: Pick<ProxyManagerConfig, 'ACME_DIRECTORY_URL' | 'ACME_STAGING'>): string {
  return c.ACME_DIRECTORY_URL ?? (c.ACME_STAGING ? LETS_ENCRYPT_STAGING : LETS_ENCRYPT_PRODUCTION);
}

export interface ProxyPaths {
  prefix: string;
  confFile: string;
  errorLog: string;
  /** JSON lines, one per request, of every route with access_log on. */
  accessLog: string;
  pidFile: string;
  sitesAvailable: string;
  sitesEnabled: string;
  webroot: string;
  certDir: string;
  acmeDir: string;
  /** The Lua balancer's file, its state (secret, snapshot) and its control socket. */
  luaDir: string;
  luaStateDir: string;
  controlSocket: string;
}

export function resolvePaths(c: ProxyManagerConfig, resolve: (...p: string[]) => string): ProxyPaths {
  const prefix = resolve(c.NGINX_PREFIX ?? resolve(c.DATA_DIR, 'nginx'));
  return {
    prefix,
    confFile: resolve(prefix, 'conf', 'nginx.conf'),
    errorLog: resolve(prefix, 'logs', 'error.log'),
    accessLog: resolve(prefix, 'logs', 'access.log'),
    pidFile: resolve(prefix, 'logs', 'nginx.pid'),
    sitesAvailable: resolve(c.NGINX_SITES_AVAILABLE ?? resolve(prefix, 'sites-available')),
    sitesEnabled: resolve(c.NGINX_SITES_ENABLED ?? resolve(prefix, 'sites-enabled')),
    webroot: resolve(prefix, 'acme-webroot'),
    certDir: resolve(c.DATA_DIR, 'certs'),
    acmeDir: resolve(c.DATA_DIR, 'acme'),
    luaDir: resolve(prefix, 'lua'),
    luaStateDir: resolve(prefix, 'conf'),
    controlSocket: resolve(prefix, 'control.sock'),
  };
}
