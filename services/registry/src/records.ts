import { z } from 'zod';
import type { DropletRecord } from '@droplet-mesh/registry-client';
import { dropletIdSchema } from '@droplet-mesh/udc-kit';

const hostname = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'must be a hostname');

export const recordInputSchema = z.object({
  id: dropletIdSchema,
  name: z.string().min(1).max(100).optional(),
  url: z.url({ protocol: /^https?$/ }).max(2000),
  kind: z.enum(['service', 'host']).default('service'),
  capabilities: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9._:-]{0,62}$/, 'must be [a-z0-9._:-]'))
    .max(100)
    .default([]),
  version: z.string().max(64).optional(),
  steward: dropletIdSchema.optional(),
  health_path: z
    .string()
    .regex(/^\/[\x21-\x7e]{0,200}$/, 'must start with / and hold no spaces')
    .optional(),
  domain: hostname.optional(),
  heartbeat_interval_s: z.number().min(0.1).max(3600).optional(),
  metadata: z
    .record(z.string().max(100), z.unknown())
    .refine((m) => JSON.stringify(m).length <= 8192, 'must be at most 8 KiB as JSON')
    .optional(),
});
export type RecordInput = z.infer<typeof recordInputSchema>;

/** What is stored: the public record plus the hash of its droplet key. */
export interface StoredRecord extends DropletRecord {
  key_hash?: string;
  last_reported_status?: string;
}

export function publicRecord(
  r: StoredRecord,
  lastSeenMs?: number,
  report?: { status?: string; metrics?: Record<string, unknown> },
): DropletRecord {
  const { key_hash: _k, ...rest } = r;
  return {
    ...rest,
    ...(lastSeenMs ? { last_heartbeat_at: new Date(lastSeenMs).toISOString() } : {}),
    ...(report ? { last_report: report } : {}),
  };
}

/** Records that heartbeat for themselves are subject to liveness; ones a steward registered are not. */
export function isSelfRegistered(r: DropletRecord): boolean {
  return r.steward === r.id;
}

export function matchesFilter(r: DropletRecord, f: { capability?: string; status?: string; kind?: string }): boolean {
  return (!f.capability || r.capabilities.includes(f.capability)) && (!f.status || r.status === f.status) && (!f.kind || r.kind === f.kind);
}
