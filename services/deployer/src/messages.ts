import { z } from 'zod';
import { InvalidRequest, NotFound, parseOrThrow, queued, type MessageHandler } from '@droplet-mesh/udc-kit';
import { nameSchema } from './domain/model.js';
import { TARGET_OR_REPLICA_PATTERN, TARGET_PATTERN, targetId } from './domain/naming.js';
import type { Deployer } from './deploy/deployer.js';
import type { Stores } from './store/stores.js';
import { deploymentView } from './routes/deployments.js';
import { parseJsonDeploy, toSource } from './routes/deploy-input.js';

const byNames = z.object({ project: nameSchema, service: nameSchema, environment: nameSchema });
const target = z.union([z.object({ target_id: z.string().regex(TARGET_PATTERN) }), byNames]);
/** A restart may name one replica by its registry record id (what health-monitor knows). */
const restartTarget = z.union([z.object({ target_id: z.string().regex(TARGET_OR_REPLICA_PATTERN) }), byNames]);
const idOf = (t: z.infer<typeof restartTarget>) => ('target_id' in t ? t.target_id : targetId(t.project, t.service, t.environment));
const wait = z.object({ wait: z.boolean().default(false) });

function payloadOf(p: Record<string, unknown>) {
  const { action: _a, wait: _w, ...rest } = p;
  return rest;
}

/** UDC commands for other droplets: deploy, rollback, restart (the health-monitor calls restart). */
export function createMessageHandlers(deployer: () => Deployer, stores: () => Stores): Record<string, MessageHandler> {
  const finish = async (acc: Awaited<ReturnType<Deployer['requestDeploy']>>, waitForIt: boolean) => {
    if (!waitForIt) return queued({ id: acc.deployment.id, status: acc.deployment.status, queue_position: acc.position });
    await acc.done;
    return deploymentView(acc.deployment);
  };
  return {
    deploy: {
      types: ['command'],
      handle: async (payload, envelope) => {
        const { wait: w } = parseOrThrow(wait, payload, 'payload');
        const body = parseJsonDeploy(payloadOf(payload));
        const by = `droplet:${envelope.source}`;
        if ('config' in body) {
          const c = await stores().deployConfigs.get(body.config);
          if (!c) throw new NotFound(`no deploy config '${body.config}'`);
          return finish(
            await deployer().requestDeploy({
              project: c.project,
              service: c.service,
              environment: c.environment,
              source: toSource(c.source),
              auto_rollback: c.auto_rollback,
              queue: body.queue,
              requested_by: by,
            }),
            w,
          );
        }
        return finish(await deployer().requestDeploy({ ...body, source: toSource(body.source), requested_by: by }), w);
      },
    },
    rollback: {
      types: ['command'],
      /** `{deployment_id}`, or a target: back to the last succeeded deploy before the current one. */
      handle: async (payload, envelope) => {
        const { wait: w } = parseOrThrow(wait, payload, 'payload');
        const by = `droplet:${envelope.source}`;
        const p = payloadOf(payload);
        if (typeof p.deployment_id === 'string') return finish(await deployer().rollback(p.deployment_id, by), w);
        const t = idOf(parseOrThrow(target, p, 'payload'));
        const release = await deployer().release(t);
        const previous = (await stores().deployments.list())
          .filter((d) => d.target_id === t && d.status === 'succeeded' && d.id !== release.deployment_id && d.image !== release.image)
          .sort((a, b) => b.created_at.localeCompare(a.created_at))[0];
        if (!previous) throw new InvalidRequest(`no earlier successful deploy of ${t} to roll back to`);
        return finish(await deployer().rollback(previous.id, by), w);
      },
    },
    restart: {
      types: ['command'],
      handle: async (payload) => deployer().restart(idOf(parseOrThrow(restartTarget, payloadOf(payload), 'payload'))),
    },
  };
}
