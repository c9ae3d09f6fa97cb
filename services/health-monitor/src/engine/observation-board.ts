import { Ring } from '@droplet-mesh/udc-kit';
import type { SeenObservation } from '../domain/verdict.js';
import type { Observation } from '../domain/types.js';

/** What every monitor has heard on `health-monitor.observations`: latest per monitor, and a short history. */
export class ObservationBoard {
  private latest = new Map<string, Map<string, SeenObservation>>();
  private recent = new Map<string, Ring<Observation>>();

  constructor(private historySize = 30) {}

  add(o: Observation, receivedAt: number): void {
    let perMonitor = this.latest.get(o.target_id);
    if (!perMonitor) this.latest.set(o.target_id, (perMonitor = new Map()));
    perMonitor.set(o.monitor_id, { obs: o, receivedAt });
    let ring = this.recent.get(o.target_id);
    if (!ring) this.recent.set(o.target_id, (ring = new Ring<Observation>(this.historySize)));
    ring.push(o);
  }

  latestFor(targetId: string): ReadonlyMap<string, SeenObservation> {
    return this.latest.get(targetId) ?? new Map();
  }

  /** The most recent observation of a target by any monitor. */
  lastCheck(targetId: string): Observation | undefined {
    let best: SeenObservation | undefined;
    for (const s of this.latestFor(targetId).values()) if (!best || s.receivedAt > best.receivedAt) best = s;
    return best?.obs;
  }

  recentFor(targetId: string, limit: number): Observation[] {
    return this.recent.get(targetId)?.query(() => true, limit) ?? [];
  }

  /** Forget who saw what of a target (it moved: those reports were about another address); history stays. */
  forgetLatest(targetId: string): void {
    this.latest.delete(targetId);
  }

  /** Drop targets no longer known. */
  retain(ids: Set<string>): void {
    for (const id of this.latest.keys()) if (!ids.has(id)) this.latest.delete(id);
    for (const id of this.recent.keys()) if (!ids.has(id)) this.recent.delete(id);
  }
}
