// What happens to an environment's replicas when one of its servers is declared down:
// `move` (the default) redeploys them onto the environment's other servers; `none` leaves
// them (an operator decides; the incident says so); `replace_from_snapshot` moves them as
// `move` does (serving first), provisions a replacement from the lost instance's newest
// snapshot (src/deploy/snapshot-replacement.ts) and moves them onto it once it reports ready,
// or stays with `move` when there is no snapshot or the replacement fails.
export const serverLossPolicies = ['move', 'none', 'replace_from_snapshot'] as const;
export type ServerLossAction = (typeof serverLossPolicies)[number];

export interface ServerLossPolicy {
  project: string;
  environment: string;
  on_server_loss: ServerLossAction;
  updated_at: string;
  updated_by: string;
}

export const DEFAULT_SERVER_LOSS: ServerLossAction = 'move';
export const SERVER_LOSS_PREFIX = 'server-loss-policy';
