import { z } from 'zod';
import { baseConfigShape, optionalSetting } from '@droplet-mesh/udc-kit';
import { SESSION_BUCKET } from './sessions.js';

export const consoleConfigSchema = z.object({
  ...baseConfigShape,
  PORT: baseConfigShape.PORT.default(8400),
  /** The built web app (index.html and assets/); default: dist/web beside the server code. */
  CONSOLE_WEB_DIR: optionalSetting(z.string().min(1)),
  /** `auto`: the session cookie is Secure when the request came over HTTPS (directly or from a loopback proxy). */
  CONSOLE_SECURE_COOKIES: z.enum(['auto', 'true', 'false']).default('auto'),
  /**
   * Seals the operator tokens of sessions kept in NATS (any long random string). Unset: one is
   * generated once into DATA_DIR/console-session.secret. Replicas that share sessions share it.
   */
  CONSOLE_SESSION_SECRET: optionalSetting(z.string().min(16, 'must be at least 16 characters')),
  /** The KV bucket sessions are kept in (the console's NATS user may write only its default). */
  CONSOLE_SESSION_BUCKET: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default(SESSION_BUCKET),
  /** Sessions one console holds decrypted at once; the oldest is signed out beyond this. */
  CONSOLE_MAX_SESSIONS: z.coerce.number().int().min(1).max(100_000).default(1000),
  /** Failed sign-ins per client address per minute before 429. */
  CONSOLE_SIGNIN_FAILURES_PER_MIN: z.coerce.number().int().min(1).max(10_000).default(10),
  /** How long a forwarded call may take to answer (event streams: to start). */
  CONSOLE_FORWARD_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** How long the droplet list from the registry is reused. */
  CONSOLE_DISCOVERY_CACHE_MS: z.coerce.number().int().min(0).max(600_000).default(3000),
  /** The last events a new live stream starts with (the events page's backfill); 0: none. */
  CONSOLE_EVENT_BACKFILL: z.coerce.number().int().min(0).max(5000).default(200),
  /** Live event streams one session may hold open. */
  CONSOLE_MAX_STREAMS_PER_SESSION: z.coerce.number().int().min(1).max(1000).default(16),
});
export type ConsoleConfig = z.infer<typeof consoleConfigSchema>;
