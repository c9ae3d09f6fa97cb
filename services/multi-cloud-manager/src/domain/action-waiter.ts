import { DependencyUnavailable } from '@droplet-mesh/udc-kit';
import type { CloudProvider, ProviderAction } from '../providers/cloud-provider.js';
import { sleep } from '../providers/http/retry-policy.js';

export interface WaitOptions {
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Poll an action until it completes or errors; a deadline turns into DEPENDENCY_UNAVAILABLE (504). */
export async function waitForAction(provider: CloudProvider, action: ProviderAction, opts: WaitOptions): Promise<ProviderAction> {
  const deadline = Date.now() + opts.timeoutMs;
  let current = action;
  while (current.status === 'in_progress') {
    if (Date.now() >= deadline) {
      throw new DependencyUnavailable(
        `${provider.name} action ${action.type} did not finish within ${Math.round(opts.timeoutMs / 1000)} s`,
        { provider: provider.name, action: current },
        504,
      );
    }
    await sleep(Math.min(opts.intervalMs, Math.max(0, deadline - Date.now())), opts.signal);
    current = await provider.getAction(current, { signal: opts.signal });
  }
  return current;
}
