// Moving a release (off a lost or drained server, back onto a recovered one, onto a
// replacement) is a redeploy of the image it runs: placement then picks the servers anew.
import type { Release } from '../domain/model.js';
import type { Deployer } from './deployer.js';

export interface MoveResult {
  target_id: string;
  deployment_id?: string;
  /** Why this release was not moved. */
  skipped?: string;
}

/** Queue the redeploy of `r`'s image; `done` settles when it ends (never rejects), absent when none was queued. */
export async function redeployRelease(deployer: Deployer, r: Release, by: string): Promise<{ move: MoveResult; done?: Promise<unknown> }> {
  try {
    const { deployment, done } = await deployer.requestDeploy({
      project: r.project,
      service: r.service,
      environment: r.environment,
      source: { kind: 'image', image: r.image },
      requested_by: by,
    });
    return { move: { target_id: r.target_id, deployment_id: deployment.id }, done: done.catch(() => undefined) };
  } catch (err) {
    return { move: { target_id: r.target_id, skipped: (err as Error).message } };
  }
}
