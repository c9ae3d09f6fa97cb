import { createHash } from 'node:crypto';

export interface PortRequest {
  /** Stable identity: project/environment/service/slot/replica. */
  key: string;
  range: [number, number];
  /** Ports held by other releases or deploys in flight. */
  taken: ReadonlySet<number>;
  /** Probe on the target host (a bind test for the local engine). */
  isFree?: (port: number) => Promise<boolean>;
}

/** The first port a key hashes to: the same key lands on the same port while it is free. */
export function preferredPort(key: string, [lo, hi]: [number, number]): number {
  const h = createHash('sha256').update(key).digest().readUInt32BE(0);
  return lo + (h % (hi - lo + 1));
}

/** Deterministic, collision-checked: walk from the preferred port to the first free one. */
export async function allocatePort(req: PortRequest): Promise<number> {
  const [lo, hi] = req.range;
  const size = hi - lo + 1;
  const start = preferredPort(req.key, req.range);
  for (let i = 0; i < size; i++) {
    const port = lo + ((start - lo + i) % size);
    if (req.taken.has(port)) continue;
    if (req.isFree && !(await req.isFree(port))) continue;
    return port;
  }
  throw new Error(`no free port in ${lo}-${hi}`);
}
