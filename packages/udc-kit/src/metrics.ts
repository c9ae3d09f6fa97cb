import client from 'prom-client';

/** One prom-client registry per droplet, so several droplets can share a test process. */
export function createMetrics(droplet: string) {
  const registry = new client.Registry();
  registry.setDefaultLabels({ droplet });
  client.collectDefaultMetrics({ register: registry });
  const httpDuration = new client.Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  return { registry, httpDuration, client };
}
export type Metrics = ReturnType<typeof createMetrics>;
