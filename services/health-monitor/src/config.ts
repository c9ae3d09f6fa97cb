import { hostname } from 'node:os';
import { z } from 'zod';
import { addressAllowListSetting, baseConfigShape } from '@droplet-mesh/udc-kit';
import { RECOVERY_STEPS } from './domain/types.js';

/** A JSON-valued environment variable, validated by `schema` after parsing. */
function jsonEnv<S extends z.ZodType>(schema: S, fallback: string) {
  return z
    .string()
    .default(fallback)
    .transform((raw, ctx) => {
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be valid JSON' });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

const ms = (fallback: number, min = 1) => z.coerce.number().int().min(min).default(fallback);
const idPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const httpUrl = z.url({ protocol: /^https?$/ });

export const recoveryPolicySchema = z.array(z.enum(RECOVERY_STEPS)).min(1).max(10);

/** A recovery policy as a comma-separated environment variable. */
const stepList = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(recoveryPolicySchema);

export const staticTargetSchema = z.object({
  id: z.string().regex(idPattern, 'must be 1-128 of [A-Za-z0-9._-]'),
  kind: z.enum(['service', 'host']).default('service'),
  url: httpUrl,
  health_path: z.string().startsWith('/').default('/health'),
  recovery: recoveryPolicySchema.optional(),
  metadata: z.record(z.string(), z.unknown()).default({}),
});
export type StaticTarget = z.infer<typeof staticTargetSchema>;

/** Hostnames may hold dots and other characters KV keys and NATS subjects dislike. */
export function defaultMonitorId(): string {
  return `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
}

export const configSchema = z
  .object({
    ...baseConfigShape,
    PORT: baseConfigShape.PORT.default(8300),
    MONITOR_ID: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 of [A-Za-z0-9_-]')
      .default(defaultMonitorId),
    /** k: how many monitors check each target (fewer when fewer are alive). */
    MONITORS_PER_TARGET: z.coerce.number().int().min(1).max(15).default(3),
    /**
     * Defaults that call a target down within 3 s whatever the fault: a refused or failing check
     * within interval + recheck (1.1 s), a hang within interval + 2 timeouts + recheck (2.9 s).
     * A container's death comes sooner still, from the deployer's event (targets/container-events).
     */
    CHECK_INTERVAL_MS: ms(1_000, 100),
    CHECK_TIMEOUT_MS: ms(900, 50),
    /** After a failed check, confirm sooner than the next interval (and how often a target under an incident is checked). */
    RECHECK_DELAY_MS: ms(100, 10),
    CHECK_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(256),
    /** Consecutive failed checks before a monitor reports a target as failing. */
    FAILS_TO_SUSPECT: z.coerce.number().int().min(1).max(100).default(2),
    /** Consecutive good checks (from a quorum) before a down target is declared up again. */
    OKS_TO_RECOVER: z.coerce.number().int().min(1).max(1000).default(3),
    /** Observations older than this do not count toward a quorum. Default 3 check intervals. */
    QUORUM_WINDOW_MS: z.coerce.number().int().min(100).optional(),
    MEMBER_HEARTBEAT_MS: ms(2_000, 100),
    MEMBER_TTL_MS: ms(6_000, 300),
    LEASE_TTL_MS: ms(15_000, 500),
    RECOVERY_POLICY: stepList('restart,reboot,alert'),
    /** Default policy for `kind: host` targets: the deployer restarts apps, not machines. */
    HOST_RECOVERY_POLICY: stepList('reboot,alert'),
    RECOVERY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(2),
    /** Wait after a recovery action before the next (doubles each attempt, capped). */
    RECOVERY_BACKOFF_MS: ms(30_000, 100),
    RECOVERY_BACKOFF_MAX_MS: ms(300_000, 100),
    RECOVERY_TIMEOUT_MS: ms(10_000, 50),
    STATIC_TARGETS: jsonEnv(z.array(staticTargetSchema).max(100_000), '[]'),
    TARGET_REFRESH_MS: ms(10_000, 100),
    /** Check every server's Docker Engine the deployer knows (GET /_ping over mutual TLS); false: only static and registry targets. */
    SERVER_ENGINE_CHECKS: z
      .enum(['true', 'false', '1', '0', ''])
      .optional()
      .transform((v) => v === undefined || v === '' || v === 'true' || v === '1'),
    /**
     * host:port exceptions to the check address policy: registry records pointing at
     * link-local/cloud metadata addresses, or at the mesh's own loopback ports (unless the
     * record is a droplet registered as itself), are not checked. E.g. `10.0.0.5:8000,[fe80::1]:80`.
     */
    CHECK_ALLOW: addressAllowListSetting,
    /** Resolved incidents older than this are deleted (uptime over 7 d needs at least 7). */
    INCIDENT_RETENTION_DAYS: z.coerce.number().positive().max(3650).default(30),
    /** At most this many resolved incidents are kept (the oldest go first). */
    INCIDENT_MAX_RESOLVED: z.coerce.number().int().min(1).max(1_000_000).default(1000),
    /** How often resolved incidents are pruned (also at start and after an incident resolves). */
    INCIDENT_PRUNE_INTERVAL_MS: ms(3_600_000, 100),
    /** Extra URLs proving this monitor's own network works (peers' /health are always used). */
    CONTROL_CHECK_URLS: jsonEnv(z.array(httpUrl).max(20), '[]'),
    SMTP_URL: z
      .string()
      .regex(/^smtps?:\/\/\S+$/, 'must be an smtp:// or smtps:// URL')
      .optional(),
    ALERT_EMAIL_TO: z
      .string()
      .default('')
      .transform((s) =>
        s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.email()).max(50)),
    ALERT_EMAIL_FROM: z.email().default('health-monitor@localhost'),
    ALERT_WEBHOOK_URLS: jsonEnv(z.array(httpUrl).max(20), '[]'),
    WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(5),
    WEBHOOK_BACKOFF_MS: ms(500, 1),
    /** Minutes between "all OK" digests; 0 turns the digest off. Fractions allowed. */
    DIGEST_INTERVAL_MIN: z.coerce.number().min(0).max(100_000).default(1440),
    /** Test hook: {"<target id>"|"*": url}; "*" redirects every check, control checks too. */
    CHECK_URL_OVERRIDE_FOR_TESTS: jsonEnv(z.record(z.string(), httpUrl), '{}'),
  })
  .refine((c) => !c.ALLOW_SIMPLE_TOKEN || !!c.API_TOKEN, {
    message: 'API_TOKEN is required when ALLOW_SIMPLE_TOKEN=true',
    path: ['API_TOKEN'],
  })
  .refine((c) => c.MEMBER_TTL_MS > c.MEMBER_HEARTBEAT_MS, { message: 'must be longer than MEMBER_HEARTBEAT_MS', path: ['MEMBER_TTL_MS'] })
  .refine((c) => c.CHECK_TIMEOUT_MS <= c.CHECK_INTERVAL_MS * 10, {
    message: 'must be at most 10 check intervals',
    path: ['CHECK_TIMEOUT_MS'],
  })
  .refine((c) => c.ALERT_EMAIL_TO.length === 0 || !!c.SMTP_URL, {
    message: 'SMTP_URL is required when ALERT_EMAIL_TO is set',
    path: ['SMTP_URL'],
  });

export type Config = z.infer<typeof configSchema>;

export function quorumWindowMs(c: Config): number {
  return c.QUORUM_WINDOW_MS ?? 3 * c.CHECK_INTERVAL_MS;
}
