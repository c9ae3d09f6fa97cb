import type { Metrics } from '@droplet-mesh/udc-kit';
import type { Certificates } from './acme/certificates.js';
import type { NginxController } from './nginx/nginx-controller.js';
import type { Reconciler } from './reconciler.js';

/** Proxy-manager gauges, read at scrape time from the live objects. */
export function registerProxyMetrics(
  metrics: Metrics,
  d: { certificates: Certificates; nginx: NginxController; reconciler: Reconciler },
): void {
  const { client, registry } = metrics;
  new client.Gauge({
    name: 'proxy_manager_certificate_expiry_timestamp_seconds',
    help: 'Unix time at which the certificate for a domain expires',
    labelNames: ['domain'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const c of await d.certificates.list()) this.set({ domain: c.domain }, Math.floor(Date.parse(c.not_after) / 1000));
    },
  });
  new client.Gauge({
    name: 'proxy_manager_nginx_tests_total',
    help: 'nginx -t runs since start',
    registers: [registry],
    collect() {
      this.set(d.nginx.tests);
    },
  });
  new client.Gauge({
    name: 'proxy_manager_nginx_reloads_total',
    help: 'nginx reloads since start',
    registers: [registry],
    collect() {
      this.set(d.nginx.reloads);
    },
  });
  new client.Gauge({
    name: 'proxy_manager_routes',
    help: 'Routes by state',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const counts: Record<string, number> = { serving: 0, no_upstream: 0, failed: 0 };
      for (const s of d.reconciler.statuses.values()) counts[s.state]++;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
}
