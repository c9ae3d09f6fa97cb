import { z } from 'zod';
import type { Bus } from '@droplet-mesh/udc-kit';

/**
 * The deployer's crash events (udc-kit publishes `udc.<droplet>.events.<type>`; only the
 * deployer may publish under `udc.deployer.`, by NATS authorization). It follows each
 * engine's Docker events, so it sees an app container die the moment it does, long before a
 * check interval comes round; it restarts the container itself.
 */
export const CONTAINER_DIED_SUBJECT = 'udc.deployer.events.service.container_died';
export const CONTAINER_RESTARTED_SUBJECT = 'udc.deployer.events.service.container_restarted';
/** The deployer restarted a container too often in a short window and stopped: restarting it again is futile. */
export const CRASH_LOOP_SUBJECT = 'udc.deployer.events.service.crash_loop';

const id = z.string().regex(/^[A-Za-z0-9._-]{1,200}$/);
const containerEvent = z.object({
  target_id: id,
  /** The dead container's replica's own registry record (`<target>.r<n>` from the second replica on): what is checked. */
  record_id: id.optional(),
  server_id: z.string().max(200),
  container: z.string().max(300),
  /** When the engine saw it die: with the target, what makes two reports of one death the same. */
  died_at: z.iso.datetime(),
  deployment_id: z.string().max(200).optional(),
  exit_code: z.number().nullable().optional(),
  oom_killed: z.boolean().optional(),
});
export type ContainerDied = z.infer<typeof containerEvent>;

const containerRestarted = containerEvent.extend({
  restarted_by: z.enum(['deployer', 'engine']).optional(),
  restart_ms: z.number().optional(),
});
export type ContainerRestarted = z.infer<typeof containerRestarted>;

const crashLoop = containerEvent.omit({ died_at: true, oom_killed: true }).extend({
  restarts: z.number().int().min(1),
  window_s: z.number().positive(),
});
export type CrashLoop = z.infer<typeof crashLoop>;

export function followContainerEvents(
  nc: Bus['nc'],
  on: { died: (e: ContainerDied) => void; restarted: (e: ContainerRestarted) => void; crashLoop: (e: CrashLoop) => void },
): Array<ReturnType<Bus['nc']['subscribe']>> {
  const follow = <T extends { target_id: string; record_id?: string }>(subject: string, schema: z.ZodType<T>, handle: (e: T) => void) =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let body: unknown;
        try {
          body = msg.json();
        } catch {
          return;
        }
        const parsed = schema.safeParse(body);
        // The incident is about the replica that died, the target this monitor checks.
        if (parsed.success) handle({ ...parsed.data, target_id: parsed.data.record_id ?? parsed.data.target_id });
      },
    });
  return [
    follow(CONTAINER_DIED_SUBJECT, containerEvent, on.died),
    follow(CONTAINER_RESTARTED_SUBJECT, containerRestarted, on.restarted),
    follow(CRASH_LOOP_SUBJECT, crashLoop, on.crashLoop),
  ];
}

/** How the incident says what happened. */
export function describeDeath(e: ContainerDied): string {
  const how = e.oom_killed
    ? 'was killed for using too much memory'
    : `exited${typeof e.exit_code === 'number' ? ` with code ${e.exit_code}` : ''}`;
  return `container ${e.container} on server ${e.server_id} ${how}; the deployer is starting it again`;
}

export function describeCrashLoop(e: CrashLoop): string {
  return `container ${e.container} on server ${e.server_id} crashed ${e.restarts} times in ${e.window_s} s; the deployer stopped restarting it`;
}
