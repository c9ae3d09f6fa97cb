// Request schemas shared by the unified routes and their legacy aliases.
import { z } from 'zod';
import { paginationQuery } from '@droplet-mesh/udc-kit';
import { CATALOG_KINDS } from '../domain/catalog-cache.js';
import { INSTANCE_STATUSES, POWER_ACTIONS, PROVIDER_NAMES } from '../providers/cloud-provider.js';

export const providerName = z.enum(PROVIDER_NAMES);
export const instanceParams = z.object({ provider: providerName, id: z.string().min(1).max(128) });
export const idParams = z.object({ id: z.string().min(1).max(128) });

/** Query flags arrive as strings. */
export const queryFlag = z
  .enum(['true', 'false', '1', '0', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1');

export const instanceFilter = z.object({
  provider: providerName.optional(),
  status: z.enum(INSTANCE_STATUSES).optional(),
  region: z.string().min(1).max(64).optional(),
  tag: z.string().min(1).max(64).optional(),
  name: z.string().min(1).max(255).optional(),
});
export const listQuery = paginationQuery.extend(instanceFilter.shape);
export const searchQuery = instanceFilter.extend({ q: z.string().min(1).max(255) });

const hostname = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'letters, digits, dots and dashes; starts and ends with a letter or digit');
// Tags must not contain ':' (DigitalOcean and Vultr carry labels as `key:value` tags).
const tag = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, _ and -');
const labelKey = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, _ . and -');
const labelValue = z
  .string()
  .max(63)
  .regex(/^[A-Za-z0-9_.-]*$/, 'letters, digits, _ . and -');

export const createFields = z.object({
  name: hostname,
  region: z.string().min(1).max(64),
  size: z.string().min(1).max(64),
  image: z.string().min(1).max(255),
  tags: z.array(tag).max(20).default([]),
  labels: z.record(labelKey, labelValue).default({}),
  user_data: z
    .string()
    .max(64 * 1024)
    .optional(),
  ssh_keys: z.array(z.string().min(1).max(255)).max(20).optional(),
  command: z.array(z.string().max(1000)).max(50).optional(),
  /** Wait for the server to run (and be registered) before answering. */
  wait: z.boolean().default(false),
});
export const createBody = createFields.extend({ provider: providerName });

export const actionBody = z.object({
  type: z.enum(POWER_ACTIONS),
  wait: z.boolean().default(false),
  /** Power off or shut down an instance not created here. */
  force: z.boolean().default(false),
});
export const forceQuery = z.object({ force: queryFlag });
export const actionQuery = z.object({ force: queryFlag, wait: queryFlag });

export const snapshotBody = z.object({
  name: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9][A-Za-z0-9 _.-]*$/, 'letters, digits, spaces, _ . and -'),
  wait: z.boolean().default(false),
  /** Snapshot a local container the mesh did not create (admin only). */
  force: z.boolean().default(false),
});

export const catalogParams = z.object({ kind: z.enum(CATALOG_KINDS) });
export const providerQuery = z.object({ provider: providerName.optional() });

/** Idempotency-Key header: visible ASCII, at most 255 characters. */
export const idempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, 'visible ASCII characters');
