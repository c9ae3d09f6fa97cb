import { isIP } from 'node:net';
import { z } from 'zod';
import { baseConfigShape } from '@droplet-mesh/udc-kit';
import { parseMasterKey } from './domain/secrets-crypto.js';
import { meshRegistryConfigShape } from './registry/mesh-registry.js';

const portRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'must look like 20000-29999')
  .transform((s) => s.split('-').map(Number) as [number, number])
  .refine(([lo, hi]) => lo >= 1024 && hi <= 65535 && hi - lo >= 16, 'must be within 1024-65535 and hold at least 16 ports');

export const deployerConfigSchema = z.object({
  ...baseConfigShape,
  PORT: baseConfigShape.PORT.default(8200),
  /** 32 bytes, base64 or hex: encrypts secrets at rest (AES-256-GCM). */
  DEPLOYER_MASTER_KEY: z.string({ error: 'is required (32 bytes, base64 or hex)' }).transform((v, c) => {
    try {
      return parseMasterKey(v);
    } catch (err) {
      c.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  }),
  DOCKER_HOST: z.string().optional(),
  /**
   * Where proxy-manager and this deployer reach apps on the `local` server (they run with
   * host networking). 127.0.0.1 when both run on the host itself; from containers, an
   * address of the host they can reach (e.g. host.docker.internal), apps then listening beyond loopback.
   */
  LOCAL_SERVER_ADDRESS: z
    .string()
    .regex(/^[A-Za-z0-9.:-]{1,253}$/, 'must be a hostname or an IP address')
    .default('127.0.0.1'),
  /**
   * The Docker bridge network apps run on (created, labelled mesh.managed=true, if missing;
   * a network of that name the mesh did not create is refused). Never the host's network.
   */
  APP_NETWORK: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be a Docker network name')
    .refine((v) => !['host', 'bridge', 'none', 'default'].includes(v), "must not be one of Docker's own networks")
    .default('mesh-apps'),
  /**
   * The host address apps' ports are published on, for every server. Unset: the address the
   * mesh reaches each server at (127.0.0.1 for the local one; LOCAL_SERVER_ADDRESS resolved in
   * compose; a remote server's address). Set it for a server whose reachable address is not on
   * its interfaces (NAT), e.g. a private IP, or 0.0.0.0 to publish on every interface.
   */
  APP_BIND_ADDRESS: z
    .string()
    .optional()
    .transform((v) => (v?.trim() ? v.trim() : undefined))
    .refine((v) => v === undefined || isIP(v) !== 0, 'must be an IP address'),
  DEPLOY_PORT_RANGE: portRange.default([20000, 29999]),
  KEEP_IMAGES: z.coerce.number().int().min(1).max(100).default(5),
  /** Base image of generated Dockerfiles (build arg BASE_IMAGE). */
  NODE_BASE_IMAGE: z.string().min(1).default('node:20-slim'),
  PYTHON_BASE_IMAGE: z.string().min(1).default('python:3.12-slim'),
  /** Upper bound of any step without its own limit (resolve, build, transfer). */
  STEP_TIMEOUT_S: z.coerce.number().positive().max(7200).default(600),
  /** Default health wait for a web service (a service may set its own). */
  HEALTH_TIMEOUT_S: z.coerce.number().positive().max(3600).default(60),
  /** Time between the route switch and stopping the old containers. */
  DRAIN_S: z.coerce.number().min(0).max(600).default(2),
  UPLOAD_LIMIT_MB: z.coerce.number().positive().max(4096).default(100),
  /** How often every service lane is checked for deploys a dead replica left (they are also checked by whoever waits behind them). */
  RECOVERY_INTERVAL_S: z.coerce.number().positive().default(30),
  /** A service's deploy lease lapses this long after its holder stops renewing it; another replica may then take over. */
  DEPLOY_LEASE_TTL_S: z.coerce.number().min(2).max(600).default(30),
  /** Start a released app container again as soon as its engine reports it died without being stopped (Docker events). */
  CRASH_RESTART: z
    .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
    .optional()
    .transform((v) => (v === undefined || v === '' ? true : v === 'true' || v === '1' || v === 'yes')),
  /** Restarts of one container within a minute before it is left to health-monitor (reported as service.crash_loop). */
  CRASH_RESTART_MAX_PER_MIN: z.coerce.number().int().min(1).max(100).default(5),
  /** The mesh image registry deploy images go through (MESH_REGISTRY, _USERNAME, _PASSWORD). */
  ...meshRegistryConfigShape,
  KV_BUCKET: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('deployer'),
  /** The deployer's base URL as a provisioned machine reaches it (its ready report); unset: the address a provision request came in at. */
  DEPLOYER_PUBLIC_URL: z
    .string()
    .optional()
    .transform((v) => (v?.trim() ? v.trim() : undefined))
    .refine((v) => v === undefined || /^https?:\/\/[^\s'"$`\\]+$/.test(v), 'must be an http(s) URL'),
  /** Addresses or CIDRs (comma-separated) a provisioned server lets reach its engine and app ports; unset: the host of the public URL. */
  SERVER_ALLOW_FROM: z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean),
    ),
  /** How long a provisioned machine has to report its engine ready before provisioning fails and the instance is deleted. */
  PROVISION_TIMEOUT_S: z.coerce.number().min(1).max(86_400).default(900),
  /** How long multi-cloud-manager may take to create the machine (the local provider starts a Docker Engine meanwhile). */
  PROVISION_CREATE_TIMEOUT_S: z.coerce.number().min(1).max(120).default(120),
});
export type DeployerConfig = z.infer<typeof deployerConfigSchema>;
