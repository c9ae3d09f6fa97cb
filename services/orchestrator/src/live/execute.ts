import { PLACEMENT_DROPPED, sourceText } from '../domain/planner.js';
import { INDEX_LABEL, SERVER_LABEL, STACK_LABEL, type Attrs } from '../domain/resources.js';
import type { StepState, UndoEntry } from '../store.js';
import { CallFailed, type MeshClient } from './mesh-client.js';

export interface ExecDeps {
  mesh: MeshClient;
  stack: string;
  applyId: string;
  /** Persist the step's state now (a deploy id before waiting for it). */
  save: () => Promise<void>;
  signal: AbortSignal;
  deployTimeoutMs: number;
  serverTimeoutMs: number;
  pollMs: number;
}

const enc = encodeURIComponent;
const FINAL = new Set(['succeeded', 'failed', 'interrupted', 'rolled_back']);

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** Wait for a deployer deployment to end; resolves with its final record. */
async function waitDeployment(d: ExecDeps, id: string): Promise<{ status: string; reason?: string; last_log_lines?: string[] }> {
  const deadline = Date.now() + d.deployTimeoutMs;
  for (;;) {
    const r = await d.mesh.get('deployer', `/deployments/${enc(id)}`);
    if (FINAL.has(r.body.status)) return r.body;
    if (Date.now() > deadline)
      throw new Error(`deployment ${id} did not finish within ${Math.round(d.deployTimeoutMs / 1000)} s (still ${r.body.status})`);
    await sleep(d.pollMs, d.signal);
  }
}

function serviceBody(a: Attrs) {
  return {
    type: a.type,
    ...(a.domain ? { domain: a.domain } : {}),
    health_path: a.health_path,
    env: a.env,
    replicas: a.replicas,
  };
}

function routeBody(a: Attrs) {
  return {
    domain: a.domain,
    upstreams: a.upstreams,
    health_path: a.health_path,
    enable_ssl: a.https,
    require_healthy: a.require_healthy ?? true,
    websocket: a.websocket ?? false,
  };
}

type DeploySource = { image: string } | { git: { url: string; ref: string; path?: string } };

async function deploy(d: ExecDeps, step: StepState, a: Attrs, source: DeploySource): Promise<string> {
  // A deploy its deployer abandoned (killed mid-deploy: `interrupted`) is started again, once.
  for (let attempt = 1; ; attempt++) {
    if (!step.deployment_id) {
      const r = await d.mesh.call('deployer', 'POST', '/deployments', {
        body: { project: a.project, service: a.deployer_service, environment: a.environment, source },
      });
      step.deployment_id = r.body.id as string;
      await d.save();
    }
    const done = await waitDeployment(d, step.deployment_id);
    if (done.status === 'interrupted' && attempt < 2) {
      step.detail = `deployment ${step.deployment_id} was interrupted (${done.reason ?? 'its deployer stopped'}); deploying again`;
      step.deployment_id = undefined;
      await d.save();
      continue;
    }
    return finished(step, done, source);
  }
}

function finished(step: StepState, done: { status: string; reason?: string; last_log_lines?: string[] }, source: DeploySource): string {
  if (done.status !== 'succeeded') {
    const tail = done.last_log_lines?.slice(-3).join(' | ');
    throw new Error(
      `deployment ${step.deployment_id} ${done.status}: ${done.reason ?? 'no reason given'}${tail ? ` (last log: ${tail})` : ''}`,
    );
  }
  return `deployed ${'image' in source ? source.image : `${source.git.url}@${source.git.ref}`} (deployment ${step.deployment_id})`;
}

async function createServer(d: ExecDeps, step: StepState, a: Attrs, key: string): Promise<{ provider: string; provider_id: string }> {
  const [, server, index] = step.id.split('/');
  const r = await d.mesh.call('multi-cloud-manager', 'POST', '/instances', {
    headers: { 'idempotency-key': key },
    body: {
      provider: a.provider,
      name: a.name,
      region: a.region,
      size: a.size,
      image: a.image,
      tags: a.tags,
      labels: { [STACK_LABEL]: d.stack, [SERVER_LABEL]: server, [INDEX_LABEL]: index },
      wait: true,
    },
    timeoutMs: d.serverTimeoutMs,
  });
  if (r.body.wait_error) throw new Error(`the instance was created but did not come up: ${r.body.wait_error.message}`);
  return { provider: r.body.instance.provider, provider_id: r.body.instance.provider_id };
}

/**
 * A server provisioned through the deployer (`provision: true`): one call makes the machine
 * with its engine, then its record is followed until the engine registered, or the deployer
 * says provisioning failed or expired (bounded by its provisioning timeout, and by ours).
 */
async function provisionServer(d: ExecDeps, step: StepState, a: Attrs): Promise<{ provider: string; provider_id: string }> {
  const id = String(a.name);
  // 409: already provisioned, or being provisioned (a resumed apply): follow it.
  await d.mesh.call('deployer', 'POST', '/servers/provision', {
    body: { id, provider: a.provider, region: a.region, size: a.size, image: a.image },
    accept: [409],
  });
  const deadline = Date.now() + d.serverTimeoutMs;
  for (;;) {
    const r = await d.mesh.get('deployer', `/servers/${enc(id)}`, { accept: [404] });
    const b = r.body ?? {};
    if (r.status === 200 && !b.provisioning) {
      if (b.instance_id) {
        const [provider, provider_id] = String(b.instance_id).split(/:(.*)/s);
        return { provider, provider_id: provider_id ?? '' };
      }
      // A report that overtook the instance's creation leaves it only on the provisioning record.
      const rec = await d.mesh.get('deployer', `/servers/provision/${enc(id)}`, { accept: [404] });
      return { provider: String(rec.body?.provider ?? a.provider), provider_id: String(rec.body?.instance_id ?? '') };
    }
    if (b.status === 'failed' || b.status === 'expired')
      throw new Error(`provisioning server ${id} ${String(b.status)}: ${b.reason ?? 'no reason given'}`);
    // 404 for a moment: its report was accepted and the server is being registered.
    if (r.status === 404 && (await d.mesh.get('deployer', `/servers/provision/${enc(id)}`, { accept: [404] })).status === 404)
      throw new Error(`the deployer has neither a server nor a provisioning record '${id}'`);
    if (b.instance_id && !step.created_ref) {
      step.created_ref = { provider: String(b.provider ?? a.provider), provider_id: String(b.instance_id) };
      step.detail = `${String(b.status)}: instance ${String(b.instance_id)}`;
      await d.save();
    }
    if (Date.now() > deadline)
      throw new Error(`server ${id} was not provisioned within ${Math.round(d.serverTimeoutMs / 1000)} s (still ${String(b.status)})`);
    await sleep(d.pollMs, d.signal);
  }
}

/**
 * Remove a provisioned server: the deployer drains and forgets it (DELETE answers 202 while
 * its replicas move), then multi-cloud-manager deletes the machine it made (`server.delete`).
 */
async function removeProvisioned(d: ExecDeps, name: string, ref: { provider: string; provider_id: string } | undefined): Promise<string> {
  const r = await d.mesh.call('deployer', 'DELETE', `/servers/${enc(name)}`, { accept: [404] });
  if (r.status === 202) {
    const deadline = Date.now() + d.serverTimeoutMs;
    for (;;) {
      const g = await d.mesh.get('deployer', `/servers/${enc(name)}`, { accept: [404] });
      if (g.status === 404 || g.body?.provisioning) break;
      if (g.body?.removal?.status === 'failed') throw new Error(`the deployer could not remove server ${name}: ${g.body.removal.reason}`);
      if (Date.now() > deadline) throw new Error(`server ${name} was not drained within ${Math.round(d.serverTimeoutMs / 1000)} s`);
      await sleep(d.pollMs, d.signal);
    }
  }
  if (!ref?.provider_id) return `server ${name} removed from the deployer (no instance known)`;
  try {
    await d.mesh.command('multi-cloud-manager', 'server.delete', { provider: ref.provider, instance_id: ref.provider_id });
  } catch (err) {
    if (!(err instanceof CallFailed && err.upstreamCode === 'NOT_FOUND')) throw err;
  }
  return `server ${name} drained and removed; ${ref.provider} instance ${ref.provider_id} deleted`;
}

type Placed = Array<{ server_id: string; replicas: number }>;

/** `<project>/<environment>`: how the deployer's servers name an environment they serve. */
const envRef = (a: Attrs) => `${String(a.project)}/${String(a.environment)}`;

/** Make (or stop) each server serve the environment; says which ones changed. */
async function assign(d: ExecDeps, serverIds: string[], ref: string, on: boolean): Promise<string[]> {
  const changed: string[] = [];
  for (const id of serverIds) {
    const r = await d.mesh.get('deployer', `/servers/${enc(id)}`, { accept: [404] });
    if (r.status === 404) {
      if (!on) continue;
      throw new Error(
        `the deployer has no server '${id}': register this machine's Docker Engine with the deployer (POST /servers/provision, or POST /servers) or name a known one with engine:`,
      );
    }
    const envs: string[] = r.body.environments ?? [];
    if (envs.includes(ref) === on) continue;
    await d.mesh.call('deployer', 'PATCH', `/servers/${enc(id)}`, {
      body: { environments: on ? [...envs, ref] : envs.filter((e) => e !== ref) },
    });
    changed.push(id);
  }
  return changed;
}

async function place(d: ExecDeps, step: StepState, a: Attrs): Promise<string> {
  const servers = a.servers as Placed;
  const added = await assign(
    d,
    servers.map((x) => x.server_id),
    envRef(a),
    true,
  );
  step.assigned_added = [...new Set([...(step.assigned_added ?? []), ...added])];
  await d.save();
  await d.mesh.call(
    'deployer',
    'PUT',
    `/projects/${enc(String(a.project))}/services/${enc(String(a.deployer_service))}/placements/${enc(String(a.environment))}`,
    { body: { servers } },
  );
  return `placed on ${servers.map((x) => `${x.server_id} (${x.replicas})`).join(', ')}`;
}

/** Run one step against the droplet that owns its resource. Idempotent: a resumed apply may run it again. */
export async function executeStep(d: ExecDeps, step: StepState): Promise<string> {
  const a = (step.after ?? step.before ?? {}) as Attrs;
  const p = enc(String(a.project ?? a.name));
  const ok409 = { accept: [409] };
  const gone404 = { accept: [404] };
  switch (`${step.kind}:${step.action}`) {
    case 'server:create': {
      if (a.provision) {
        step.created_ref = await provisionServer(d, step, a);
        return `provisioned ${String(a.name)}: its engine is a deployer server (${step.created_ref.provider} instance ${step.created_ref.provider_id})`;
      }
      step.created_ref = await createServer(d, step, a, `${d.applyId}.${step.id}`);
      return `created ${step.created_ref.provider} instance ${step.created_ref.provider_id}`;
    }
    case 'server:replace': {
      step.created_ref = await createServer(d, step, a, `${d.applyId}.${step.id}.replacement`);
      await d.save();
      if (step.ref)
        await d.mesh.call('multi-cloud-manager', 'DELETE', `/instances/${enc(step.ref.provider)}/${enc(step.ref.provider_id)}`, gone404);
      return `created ${step.created_ref.provider} instance ${step.created_ref.provider_id}, deleted ${step.ref?.provider_id ?? 'nothing'}`;
    }
    case 'server:delete': {
      if (a.provision) return removeProvisioned(d, String(a.name), step.ref);
      if (!step.ref) return 'no instance to delete';
      await d.mesh.call('multi-cloud-manager', 'DELETE', `/instances/${enc(step.ref.provider)}/${enc(step.ref.provider_id)}`, gone404);
      return `deleted ${step.ref.provider} instance ${step.ref.provider_id}`;
    }
    case 'project:create':
      await d.mesh.call('deployer', 'POST', '/projects', {
        body: { name: a.name, ...(a.description ? { description: a.description } : {}) },
        ...ok409,
      });
      return `project ${String(a.name)}`;
    case 'project:update':
      await d.mesh.call('deployer', 'PATCH', `/projects/${p}`, { body: { description: a.description ?? '' } });
      return `project ${String(a.name)} updated`;
    case 'project:delete':
      await d.mesh.call('deployer', 'DELETE', `/projects/${enc(String(a.name))}`, gone404);
      return `project ${String(a.name)} deleted`;
    case 'environment:create':
      await d.mesh.call('deployer', 'POST', `/projects/${p}/environments`, { body: { name: a.name, env: a.env }, ...ok409 });
      return `environment ${String(a.project)}/${String(a.name)}`;
    case 'environment:update':
      await d.mesh.call('deployer', 'PATCH', `/projects/${p}/environments/${enc(String(a.name))}`, { body: { env: a.env } });
      return `environment ${String(a.project)}/${String(a.name)} updated`;
    case 'environment:delete':
      await d.mesh.call('deployer', 'DELETE', `/projects/${p}/environments/${enc(String(a.name))}`, gone404);
      return `environment ${String(a.project)}/${String(a.name)} deleted`;
    case 'service:create':
      await d.mesh.call('deployer', 'POST', `/projects/${p}/services`, { body: { name: a.deployer_service, ...serviceBody(a) }, ...ok409 });
      return `service ${String(a.project)}/${String(a.deployer_service)}`;
    case 'service:update':
      await d.mesh.call('deployer', 'PATCH', `/projects/${p}/services/${enc(String(a.deployer_service))}`, { body: serviceBody(a) });
      return `service ${String(a.project)}/${String(a.deployer_service)} updated`;
    case 'service:delete':
      await d.mesh.call('deployer', 'DELETE', `/projects/${p}/services/${enc(String(a.deployer_service))}`, gone404);
      return `service ${String(a.project)}/${String(a.deployer_service)} deleted`;
    case 'placement:create':
    case 'placement:update':
      return place(d, step, a);
    case 'placement:delete': {
      await d.mesh.call(
        'deployer',
        'DELETE',
        `/projects/${p}/services/${enc(String(a.deployer_service))}/placements/${enc(String(a.environment))}`,
        gone404,
      );
      // Servers another placement of the environment still uses keep serving it.
      const keep = new Set(step.keep_assigned ?? []);
      const gone = await assign(
        d,
        (a.servers as Placed).map((x) => x.server_id).filter((id) => !keep.has(id)),
        envRef(a),
        false,
      );
      return `placement removed; ${gone.length > 0 ? gone.join(', ') : 'no server'} no longer serve${gone.length === 1 ? 's' : ''} ${envRef(a)}`;
    }
    case 'release:delete':
      // The deployer's undeploy: route, containers and registry record go; the history stays.
      await d.mesh.call(
        'deployer',
        'DELETE',
        `/projects/${p}/services/${enc(String(a.deployer_service))}/deployment?environment=${enc(String(a.environment))}`,
        gone404,
      );
      return `undeployed ${String(a.project)}/${String(a.deployer_service)} in ${String(a.environment)}`;
    case 'release:deploy': {
      const g = a.git as { url: string; ref: string; path?: string | null } | null;
      return deploy(d, step, a, g ? { git: { url: g.url, ref: g.ref, ...(g.path ? { path: g.path } : {}) } } : { image: String(a.image) });
    }
    case 'https:create': {
      const r = await d.mesh.call('proxy-manager', 'POST', `/proxies/${enc(String(a.target))}/ssl`, { body: {}, timeoutMs: 180_000 });
      return `HTTPS for ${String(a.domain)}${r.body?.certificate?.not_after ? ` (certificate until ${r.body.certificate.not_after})` : ''}`;
    }
    case 'https:delete': {
      const r = await d.mesh.get('proxy-manager', `/proxies/${enc(String(a.target))}`, gone404);
      if (r.status === 404) return 'no route: nothing to switch off';
      const b = r.body;
      await d.mesh.call('proxy-manager', 'PUT', `/proxies/${enc(String(a.target))}`, {
        body: {
          domain: b.domain,
          upstreams: b.upstreams,
          health_path: b.health_path,
          websocket: b.websocket,
          lb: b.lb,
          enable_ssl: false,
          require_healthy: false,
        },
      });
      return `HTTPS off for ${String(b.domain)}`;
    }
    case 'route:create':
    case 'route:update':
      await d.mesh.call('proxy-manager', 'PUT', `/proxies/${enc(String(a.name))}`, { body: routeBody(a) });
      return `route ${String(a.name)} → ${String(a.domain)}`;
    case 'route:delete':
      await d.mesh.call('proxy-manager', 'DELETE', `/proxies/${enc(String(a.name))}`, gone404);
      return `route ${String(a.name)} deleted`;
    case 'alerts:create':
    case 'alerts:update':
      await d.mesh.call('health-monitor', 'PUT', `/notifications/recipients/${enc(String(a.owner))}`, {
        body: { emails: a.emails, webhooks: a.webhooks },
      });
      return `alerts: ${(a.emails as string[]).length} email(s), ${(a.webhooks as string[]).length} webhook(s) in the health-monitor`;
    case 'alerts:delete':
      await d.mesh.call('health-monitor', 'DELETE', `/notifications/recipients/${enc(String(a.owner))}`, gone404);
      return 'alerts removed from the health-monitor';
    default:
      throw new Error(`no way to ${step.action} a ${step.kind}`);
  }
}

/** Undo one step this apply completed, where an API allows it; says what it could not undo. */
export async function undoStep(d: ExecDeps, step: StepState): Promise<UndoEntry> {
  const entry = (result: UndoEntry['result'], detail: string): UndoEntry => ({
    n: step.n,
    id: step.id,
    action: step.action,
    result,
    detail,
  });
  const before = (step.before ?? {}) as Attrs;
  const after = (step.after ?? {}) as Attrs;
  const p = enc(String(after.project ?? after.name));
  const gone404 = { accept: [404] };
  try {
    switch (`${step.kind}:${step.action}`) {
      case 'server:create':
        if (after.provision) return entry('undone', await removeProvisioned(d, String(after.name), step.created_ref));
        if (!step.created_ref) return entry('not_undone', 'the created instance is unknown');
        await d.mesh.call(
          'multi-cloud-manager',
          'DELETE',
          `/instances/${enc(step.created_ref.provider)}/${enc(step.created_ref.provider_id)}`,
          gone404,
        );
        return entry('undone', `deleted instance ${step.created_ref.provider_id}`);
      case 'project:create':
        await d.mesh.call('deployer', 'DELETE', `/projects/${enc(String(after.name))}`, gone404);
        return entry('undone', `deleted project ${String(after.name)}`);
      case 'environment:create':
        await d.mesh.call('deployer', 'DELETE', `/projects/${p}/environments/${enc(String(after.name))}`, gone404);
        return entry('undone', `deleted environment ${String(after.project)}/${String(after.name)}`);
      case 'service:create':
        await d.mesh.call('deployer', 'DELETE', `/projects/${p}/services/${enc(String(after.deployer_service))}`, gone404);
        return entry('undone', `deleted service ${String(after.project)}/${String(after.deployer_service)}`);
      case 'project:update':
        await d.mesh.call('deployer', 'PATCH', `/projects/${p}`, { body: { description: before.description ?? '' } });
        return entry('undone', 'description restored');
      case 'environment:update':
        await d.mesh.call('deployer', 'PATCH', `/projects/${p}/environments/${enc(String(after.name))}`, { body: { env: before.env } });
        return entry('undone', 'env restored');
      case 'service:update':
        await d.mesh.call('deployer', 'PATCH', `/projects/${p}/services/${enc(String(after.deployer_service))}`, {
          body: serviceBody(before),
        });
        return entry('undone', 'service settings restored (they apply from its next deploy)');
      case 'release:deploy': {
        if (!before.deployment_id)
          return entry('not_undone', 'it was the first deploy and the deployer has no API to stop a deployed service');
        const r = await d.mesh.call('deployer', 'POST', `/deployments/${enc(String(before.deployment_id))}/rollback`, { body: {} });
        const done = await waitDeployment(d, r.body.id);
        if (done.status !== 'succeeded')
          return entry('undo_failed', `rollback deployment ${r.body.id} ${done.status}: ${done.reason ?? ''}`);
        return entry('undone', `rolled back to ${sourceText(before)} (deployment ${r.body.id})`);
      }
      case 'placement:create':
      case 'placement:update': {
        if (step.action === 'update')
          await d.mesh.call(
            'deployer',
            'PUT',
            `/projects/${p}/services/${enc(String(after.deployer_service))}/placements/${enc(String(after.environment))}`,
            { body: { servers: before.servers } },
          );
        await assign(d, step.assigned_added ?? [], envRef(after), false);
        return entry(
          'undone',
          `placement ${step.action === 'update' ? 'restored' : 'taken back'} (servers serving ${envRef(after)} as before)`,
        );
      }
      case 'placement:delete': {
        // Only a placement dropped from a service that stays is undone (a destroyed service has none to go back to).
        if (step.reasons[0] !== PLACEMENT_DROPPED) return entry('not_undone', 'a delete is not undone');
        const servers = before.servers as Placed;
        await assign(
          d,
          servers.map((x) => x.server_id),
          envRef(before),
          true,
        );
        await d.mesh.call(
          'deployer',
          'PUT',
          `/projects/${enc(String(before.project))}/services/${enc(String(before.deployer_service))}/placements/${enc(String(before.environment))}`,
          { body: { servers } },
        );
        return entry('undone', `placement restored on ${servers.map((x) => x.server_id).join(', ')}`);
      }
      case 'route:create':
        await d.mesh.call('proxy-manager', 'DELETE', `/proxies/${enc(String(after.name))}`, gone404);
        return entry('undone', `deleted route ${String(after.name)}`);
      case 'route:update':
        await d.mesh.call('proxy-manager', 'PUT', `/proxies/${enc(String(after.name))}`, {
          body: { ...routeBody(before), require_healthy: false },
        });
        return entry('undone', `route ${String(after.name)} restored`);
      case 'alerts:create':
        await d.mesh.call('health-monitor', 'DELETE', `/notifications/recipients/${enc(String(after.owner))}`, gone404);
        return entry('undone', 'alerts removed from the health-monitor');
      case 'alerts:update':
        await d.mesh.call('health-monitor', 'PUT', `/notifications/recipients/${enc(String(after.owner))}`, {
          body: { emails: before.emails, webhooks: before.webhooks },
        });
        return entry('undone', 'the previous alerts restored');
      case 'https:create':
        return entry('not_undone', 'the certificate was issued and HTTPS stays on');
      case 'server:replace':
        return entry('not_undone', 'the old instance was deleted; the new one stays');
      default:
        return entry('not_undone', `a ${step.action} is not undone`);
    }
  } catch (err) {
    if (err instanceof CallFailed && err.status === 409 && step.action === 'create')
      return entry('not_undone', `the ${err.droplet} keeps it: ${err.message}`);
    return entry('undo_failed', (err as Error).message);
  }
}
