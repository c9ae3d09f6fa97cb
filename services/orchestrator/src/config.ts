import { z } from 'zod';
import { baseConfigShape, optionalSetting } from '@droplet-mesh/udc-kit';

const url = optionalSetting(z.url());

export const orchestratorConfigSchema = z.object({
  ...baseConfigShape,
  PORT: baseConfigShape.PORT.default(8500),
  /** Fixed URLs for the droplets it drives; unset: found through the registry. */
  DEPLOYER_URL: url,
  PROXY_MANAGER_URL: url,
  MULTI_CLOUD_MANAGER_URL: url,
  HEALTH_MONITOR_URL: url,
  /** One HTTP call to another droplet. */
  CALL_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** How long a deploy step waits for its deployment. */
  DEPLOY_TIMEOUT_S: z.coerce.number().int().min(1).max(7200).default(900),
  /** How long a server step waits for its instance to run. */
  SERVER_TIMEOUT_S: z.coerce.number().int().min(1).max(7200).default(900),
  /** An apply whose lease was not renewed for this long is taken over (its orchestrator died). */
  LEASE_STALE_S: z.coerce.number().min(1).max(600).default(15),
  /** How often to look for interrupted applies to resume. */
  RESUME_INTERVAL_S: z.coerce.number().min(0.2).max(3600).default(5),
  /** A step waits this long for a droplet that does not answer (restarting, not registered) before it fails. */
  STEP_RETRY_S: z.coerce.number().min(0).max(3600).default(60),
  /** Every applied stack is compared with live state this often (0: only on GET /stacks/{name}/drift). */
  DRIFT_INTERVAL_S: z.coerce.number().min(0).max(86_400).default(300),
  /** Plans and finished applies are kept this long (each stack's last apply is always kept). */
  RETENTION_DAYS: z.coerce.number().min(0.0001).max(3650).default(30),
  POLL_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).default(500),
  /** ?wait=true on apply waits at most this long, then answers with the apply's current state. */
  APPLY_WAIT_MAX_S: z.coerce.number().int().min(1).max(3600).default(600),
});
export type OrchestratorConfig = z.infer<typeof orchestratorConfigSchema>;
