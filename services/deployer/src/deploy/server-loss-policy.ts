// What happens to an environment's replicas when one of its servers is declared down:
// `move` (the default) redeploys them onto the environment's other servers; `none` leaves
// them (an operator decides; the incident says so). `replace_from_snapshot` is not offered:
// local servers (a dockerd in its own network namespace) have no snapshots, and an emulated
// cloud's instance made from a snapshot never boots to report ready.
export const serverLossPolicies = ['move', 'none'] as const;
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
