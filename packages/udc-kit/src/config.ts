import { z } from 'zod';
import { dropletIdSchema, hostnameSchema } from './droplet-id.js';

/** Environment every droplet reads. Services extend it with `baseConfigSchema.extend({...})`. */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/**
 * An optional setting where an empty value means unset: compose files pass `${VAR:-}` as
 * "" and that must not fail validation.
 */
export function optionalSetting<S extends z.ZodType>(schema: S) {
  return z.preprocess((v) => (v === '' ? undefined : v), schema.optional());
}

export const baseConfigShape = {
  PORT: z.coerce.number().int().min(0).max(65535),
  HOST: z.string().default('127.0.0.1'),
  /** One server, or a comma-separated list of a cluster's servers to fail over between. */
  NATS_URL: z
    .string()
    .regex(/^(nats|tls|ws|wss):\/\/[^\s,]+(,(nats|tls|ws|wss):\/\/[^\s,]+)*$/, 'must be a nats:// URL, or several separated by commas')
    .default('nats://127.0.0.1:4222'),
  /** Replicas of every KV bucket the droplet creates: 1 on one machine, 3 on a three-node cluster. */
  NATS_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  NATS_USER: optionalSetting(z.string()),
  NATS_PASSWORD: optionalSetting(z.string()),
  REGISTRY_URL: z.url().default('http://127.0.0.1:8000'),
  /** This droplet's own key from the registry (or the admin key, which may act for any id). */
  REGISTRY_KEY: optionalSetting(z.string()),
  /** Where the droplet says it can be reached; defaults to http://HOST:PORT. */
  PUBLIC_URL: optionalSetting(z.url()),
  /** The id this droplet registers as (default its name); dotted ids like `drop4.fullpotential.ai` too. `DROPLET_NAME` (the seeds' name) is read as this. */
  DROPLET_ID: optionalSetting(dropletIdSchema),
  /** The domain this droplet's registry record advertises (proxy-manager's sync-from-registry routes it to PUBLIC_URL). */
  DROPLET_DOMAIN: optionalSetting(hostnameSchema.transform((v) => v.toLowerCase())),
  /** The droplet id that stewards this droplet's registry record (the seeds' STEWARD). */
  STEWARD: optionalSetting(dropletIdSchema),
  JWKS_URL: optionalSetting(z.url()),
  JWT_ISSUER: z.string().min(1).default('droplet-mesh-registry'),
  JWT_AUDIENCE: z.string().min(1).default('droplet-mesh'),
  DATA_DIR: z.string().min(1).default('./.mesh'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ALLOW_SIMPLE_TOKEN: bool,
  API_TOKEN: optionalSetting(z.string().min(16, 'must be at least 16 characters')),
  HEARTBEAT_INTERVAL_S: z.coerce.number().positive().default(30),
  BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, 'must look like 1mb')
    .default('1mb'),
};
export const baseConfigSchema = z.object(baseConfigShape).refine((c) => !c.ALLOW_SIMPLE_TOKEN || !!c.API_TOKEN, {
  message: 'API_TOKEN is required when ALLOW_SIMPLE_TOKEN=true',
  path: ['API_TOKEN'],
});
export type BaseConfig = z.infer<typeof baseConfigSchema>;

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; problem: string }[]) {
    super(issues.map((i) => `${i.variable}: ${i.problem}`).join('; '));
    this.name = 'ConfigError';
  }
}

/** The seeds' names for settings: read as the setting they stand for when that one is unset. */
export const ENV_ALIASES: Readonly<Record<string, string>> = { DROPLET_NAME: 'DROPLET_ID' };

/** The environment with every alias folded into its setting; an alias that contradicts its setting is an error naming both. */
export function applyEnvAliases(env: Env): Env {
  const out: Env = { ...env };
  const issues: { variable: string; problem: string }[] = [];
  for (const [alias, setting] of Object.entries(ENV_ALIASES)) {
    const a = env[alias];
    if (a === undefined || a === '') continue;
    const s = env[setting];
    if (s === undefined || s === '') out[setting] = a;
    else if (s !== a) issues.push({ variable: alias, problem: `is an alias of ${setting}, which says '${s}': set one of them` });
  }
  if (issues.length) throw new ConfigError(issues);
  return out;
}

/** Parse an environment with a zod schema; on failure one line names each bad variable. */
export function parseConfig<S extends z.ZodType>(schema: S, env: Env): z.infer<S> {
  const res = schema.safeParse(applyEnvAliases(env));
  if (res.success) return res.data;
  throw new ConfigError(res.error.issues.map((i) => ({ variable: i.path.map(String).join('.') || '(environment)', problem: i.message })));
}

/** For main.ts: parse or print one clear line and exit 1. */
export function configOrExit<S extends z.ZodType>(schema: S, env: Env = process.env): z.infer<S> {
  try {
    return parseConfig(schema, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`invalid configuration: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
