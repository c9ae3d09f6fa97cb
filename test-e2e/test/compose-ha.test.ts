// docker-compose.ha.yml over docker-compose.yml: the merged file is valid and says what the
// issue asks (three NATS nodes with routes and the mesh's users, every droplet twice, every
// droplet on the whole cluster with three replicas per bucket); and its three NATS nodes,
// brought up for real with docker-compose, form one JetStream cluster. The droplet replicas
// are not started here (their images are the compose e2e's, minutes to build).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBusyboxImage, ensureDockerEngine } from '@droplet-mesh/docker-testing';
import { MESH_DROPLETS, natsPasswordVariable, renderComposeClusterNatsConfig } from '@droplet-mesh/udc-kit';
import { waitFor } from '@droplet-mesh/udc-kit/testing';
import { ensureLocalNats } from '../support/compose-images.js';
import { REPO } from '../support/processes.js';

const NATS_IMAGE = 'mesh-local/nats:compose';
const dir = mkdtempSync(join(tmpdir(), 'mesh-compose-ha-'));
const envFile = join(dir, '.env');
const project = `meshha${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const secret = (prefix: string) => `${prefix}${randomBytes(12).toString('hex')}`;

function compose(args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'docker-compose',
      ['-p', project, '--env-file', envFile, '-f', join(REPO, 'docker-compose.yml'), '-f', join(REPO, 'docker-compose.ha.yml'), ...args],
      { cwd: REPO, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => (err ? reject(new Error(`docker-compose ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

/** The merged configuration as JSON: docker-compose prints YAML, and its own Python has PyYAML. */
async function mergedConfig(): Promise<{ services: Record<string, Record<string, unknown>> }> {
  const yaml = await compose(['config']);
  return new Promise((resolve, reject) => {
    const child = execFile(
      'python3',
      ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'],
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(JSON.parse(stdout))),
    );
    child.stdin?.end(yaml);
  });
}

beforeAll(() => {
  const env: Record<string, string> = {
    REGISTRY_ADMIN_KEY: secret('k'),
    NATS_ROUTE_PASSWORD: secret('r'),
    DEPLOYER_MASTER_KEY: randomBytes(32).toString('hex'),
    DOCKER_GID: '0',
    NATS_IMAGE,
    HEALTHCHECK_INTERVAL: '1s',
  };
  for (const d of MESH_DROPLETS) env[natsPasswordVariable(d)] = secret('p');
  writeFileSync(
    envFile,
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
    { mode: 0o600 },
  );
});

afterAll(async () => {
  await compose(['down', '-v', '--remove-orphans', '-t', '2'], 60_000).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe('docker-compose.ha.yml', () => {
  it('deploy/nats/nats-cluster.conf is what udc-kit renders (regenerate: node scripts/render-nats-conf.mjs cluster)', () => {
    expect(readFileSync(join(REPO, 'deploy', 'nats', 'nats-cluster.conf'), 'utf8')).toBe(renderComposeClusterNatsConfig());
  });

  it('merges with docker-compose.yml: three routed NATS nodes, every droplet twice, all on the whole cluster', async () => {
    const { services } = await mergedConfig();
    const nodes = ['nats', 'nats-2', 'nats-3'];
    for (const [i, n] of nodes.entries()) {
      const command = services[n].command as string[];
      expect(command).toEqual(expect.arrayContaining(['--name', `mesh-nats-${i + 1}`]));
      const routes = command[command.indexOf('--routes') + 1].split(',');
      expect(routes.map((r) => new URL(r).host).sort()).toEqual(nodes.map((x) => `${x}:6222`).sort());
      // The route password is interpolated from .env, never committed.
      const routePassword = readFileSync(envFile, 'utf8').match(/^NATS_ROUTE_PASSWORD=(.*)$/m)?.[1];
      for (const r of routes) expect(decodeURIComponent(new URL(r).password)).toBe(routePassword);
      expect(services[n].volumes).toContain(`${join(REPO, 'deploy/nats/nats-cluster.conf')}:/etc/nats/mesh.conf:ro`);
    }
    const composeDroplets = Object.keys(services).filter((s) => MESH_DROPLETS.includes(s));
    expect(composeDroplets.length).toBeGreaterThanOrEqual(5);
    for (const d of composeDroplets) {
      const replica = services[`${d}-2`];
      expect(replica).toBeDefined();
      expect(replica.image).toBe(services[d].image);
      for (const s of [services[d], replica]) {
        const env = s.environment as Record<string, string>;
        expect(env.NATS_URL.split(',').sort()).toEqual(nodes.map((n) => `nats://${n}:4222`).sort());
        expect(String(env.NATS_REPLICAS)).toBe('3');
        expect(env.NATS_USER).toBe(d);
      }
      const replicaEnv = replica.environment as Record<string, string>;
      expect(replicaEnv.DROPLET_ID).toBe(`${d}-2`);
      expect(replicaEnv.PUBLIC_URL).toBe(`http://${d}-2:${(services[d].environment as Record<string, string>).PORT}`);
      // Every setting the first replica passes through, the second does too (none forgotten when one is added).
      const missing = Object.keys(services[d].environment as object).filter((k) => !(k in replicaEnv) && k !== 'MONITOR_ID');
      expect(missing).toEqual([]);
    }
  });

  it('its three NATS nodes form one JetStream cluster under docker-compose', async () => {
    const docker = await ensureDockerEngine();
    await ensureLocalNats(docker, await ensureBusyboxImage(docker), NATS_IMAGE);
    await compose(['up', '-d', '--no-deps', 'nats', 'nats-2', 'nats-3'], 90_000);
    const jsz = async (node: string) =>
      JSON.parse(await compose(['exec', '-T', node, 'wget', '-q', '-O', '-', 'http://127.0.0.1:8222/jsz'], 10_000)) as {
        meta_cluster?: { leader?: string; cluster_size?: number };
      };
    for (const node of ['nats', 'nats-2', 'nats-3'])
      await waitFor(
        `${node} in a three-node cluster with a leader`,
        async () => {
          const m = (await jsz(node).catch(() => undefined))?.meta_cluster;
          return m?.cluster_size === 3 && !!m.leader;
        },
        45_000,
        500,
      );
  }, 150_000);
});
