import { Kvm, type KV } from '@nats-io/kv';
import { z } from 'zod';
import type { Bus } from './bus.js';
import { Conflict } from './errors.js';
import { OWNED_BUCKETS } from './nats-auth.js';

/**
 * What a droplet exports and imports of its own KV buckets (`GET /admin/backup`,
 * `POST /admin/restore`). Values travel as stored: whatever a droplet seals at rest
 * (private keys, secrets, certificate keys) stays sealed in a backup.
 */
export const BACKUP_FORMAT = 'droplet-mesh-bucket-dump/1';

/**
 * State that belongs to running processes, not to the mesh: memberships and leases,
 * idempotency records, console sessions, and droplet liveness records (rebuilt by
 * registration and heartbeats; a restored one would point at the old mesh's addresses).
 */
export const EPHEMERAL_BUCKETS: ReadonlySet<string> = new Set([
  'registry',
  'mcm-idempotency',
  'health-monitor-members',
  'health-monitor-leases',
  'console-sessions',
]);

/** The buckets `droplet` backs up by default: the ones it owns, minus ephemeral state. */
export function backupBucketsOf(droplet: string): string[] {
  return (OWNED_BUCKETS[droplet] ?? []).filter((b) => !EPHEMERAL_BUCKETS.has(b));
}

export const bucketDumpSchema = z.object({
  format: z.literal(BACKUP_FORMAT),
  droplet: z.string().min(1).max(253),
  created_at: z.string(),
  buckets: z
    .array(
      z.object({
        name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
        entries: z.array(z.object({ key: z.string().min(1).max(1024), value: z.base64() })).max(1_000_000),
      }),
    )
    .max(64),
});
export type BucketDump = z.infer<typeof bucketDumpSchema>;

/** How a droplet joins restored keys with ones it made itself at start (the registry's key ring). */
export type RestoreMerge = (key: string, incoming: Uint8Array, existing: Uint8Array | undefined) => Uint8Array;

export interface BackupOptions {
  /** Default backupBucketsOf(droplet name). */
  buckets?: string[];
  /** By bucket: those keys are merged with what is there, not overwritten. */
  merge?: Record<string, { keys: string[]; merge: RestoreMerge }>;
  /** By bucket: keys the droplet writes itself at start (a fresh mesh has them); they do not make a bucket count as holding state. */
  selfMade?: Record<string, RegExp>;
}

async function bucketExists(bus: Bus, name: string): Promise<boolean> {
  const jsm = await bus.jetstreamManager();
  return jsm.streams.info(`KV_${name}`).then(
    () => true,
    () => false,
  );
}

async function liveKeys(kv: KV): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  return keys.sort();
}

/** Every live key of the droplet's buckets (a bucket never created is left out). */
export async function dumpBuckets(bus: Bus, droplet: string, buckets: string[]): Promise<BucketDump> {
  const out: BucketDump['buckets'] = [];
  for (const name of buckets) {
    if (!(await bucketExists(bus, name))) continue;
    const kv = await new Kvm(bus.nc).open(name);
    const entries: BucketDump['buckets'][number]['entries'] = [];
    for (const key of await liveKeys(kv)) {
      const e = await kv.get(key);
      if (e && e.operation === 'PUT') entries.push({ key, value: Buffer.from(e.value).toString('base64') });
    }
    out.push({ name, entries });
  }
  return { format: BACKUP_FORMAT, droplet, created_at: new Date().toISOString(), buckets: out };
}

/**
 * Puts every entry of the dump into the droplet's buckets. A bucket that already holds keys
 * is refused (CONFLICT) unless `force`, before anything is written; keys the dump lacks stay.
 */
export async function restoreBuckets(
  bus: Bus,
  dump: BucketDump,
  opts: { allowed: string[]; force: boolean; dryRun?: boolean } & Pick<BackupOptions, 'merge' | 'selfMade'>,
): Promise<{ buckets: Array<{ name: string; restored: number }> }> {
  const unknown = dump.buckets.filter((b) => !opts.allowed.includes(b.name)).map((b) => b.name);
  if (unknown.length) throw new Conflict(`this droplet does not own bucket(s) ${unknown.join(', ')}`, { buckets: unknown });
  const opened = new Map<string, KV>();
  // A bucket the droplet never made yet is made now, as the droplet would (it keeps the settings it asks for later).
  for (const b of dump.buckets) opened.set(b.name, await bus.kv(b.name));
  if (!opts.force) {
    const busy: string[] = [];
    for (const b of dump.buckets) {
      const mergeable = new Set(opts.merge?.[b.name]?.keys ?? []);
      const selfMade = opts.selfMade?.[b.name];
      const keys = await liveKeys(opened.get(b.name) as KV);
      if (keys.some((k) => !mergeable.has(k) && !selfMade?.test(k))) busy.push(b.name);
    }
    if (busy.length)
      throw new Conflict(`bucket(s) ${busy.join(', ')} already hold state; restore with force to overwrite`, { buckets: busy });
  }
  if (opts.dryRun) return { buckets: dump.buckets.map((b) => ({ name: b.name, restored: 0 })) };
  const result: Array<{ name: string; restored: number }> = [];
  for (const b of dump.buckets) {
    const kv = opened.get(b.name) as KV;
    const merge = opts.merge?.[b.name];
    for (const { key, value } of b.entries) {
      let bytes: Uint8Array = Buffer.from(value, 'base64');
      if (merge?.keys.includes(key)) {
        const existing = await kv.get(key);
        bytes = merge.merge(key, bytes, existing?.operation === 'PUT' ? existing.value : undefined);
      }
      await kv.put(key, bytes);
    }
    result.push({ name: b.name, restored: b.entries.length });
  }
  return { buckets: result };
}
