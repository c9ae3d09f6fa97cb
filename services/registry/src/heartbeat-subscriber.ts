import { dropletIdFromToken, type Bus, type Logger } from '@droplet-mesh/udc-kit';
import type { LivenessMonitor } from './liveness-monitor.js';

/**
 * Every replica hears every heartbeat (no queue group): last-seen times stay in memory
 * everywhere, and only status transitions are written.
 */
export function subscribeHeartbeats(bus: Bus, liveness: LivenessMonitor, logger: Logger): () => void {
  const sub = bus.nc.subscribe('registry.heartbeat.*', {
    callback: (err, msg) => {
      if (err) return;
      // Ids travel as one subject token, their dots as `_` (heartbeatSubject).
      const id = dropletIdFromToken(msg.subject.slice('registry.heartbeat.'.length));
      if (!id) return;
      let body: { status?: string; metrics?: Record<string, unknown>; sent_at_ms?: number } = {};
      try {
        body = msg.data.length ? msg.json() : {};
      } catch {
        logger.debug({ droplet_id: id }, 'heartbeat body is not JSON; counted anyway');
      }
      const report = {
        status: typeof body.status === 'string' ? body.status.slice(0, 32) : undefined,
        metrics: body.metrics && typeof body.metrics === 'object' && JSON.stringify(body.metrics).length <= 4096 ? body.metrics : undefined,
      };
      void liveness.heartbeat(id, report, typeof body.sent_at_ms === 'number' ? body.sent_at_ms : undefined).then((known) => {
        if (!known) logger.debug({ droplet_id: id }, 'heartbeat from an unregistered droplet');
      });
    },
  });
  return () => sub.unsubscribe();
}
