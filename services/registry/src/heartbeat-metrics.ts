import type { Metrics } from '@droplet-mesh/udc-kit';

/** Heartbeats counted, and how long each took from sender to record (when the sender stamped it). */
export function heartbeatMetrics(metrics: Metrics) {
  const total = new metrics.client.Counter({
    name: 'registry_heartbeats_total',
    help: 'Heartbeats recorded from known droplets',
    registers: [metrics.registry],
  });
  const lag = new metrics.client.Histogram({
    name: 'registry_heartbeat_lag_seconds',
    help: 'Time from a heartbeat being sent to being recorded',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [metrics.registry],
  });
  return (lagMs: number | undefined) => {
    total.inc();
    if (lagMs !== undefined) lag.observe(Math.max(0, lagMs) / 1000);
  };
}
