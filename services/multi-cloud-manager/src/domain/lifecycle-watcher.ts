import type { Logger } from '@droplet-mesh/udc-kit';
import type { CloudProvider, Instance, ProviderAction } from '../providers/cloud-provider.js';
import { sleep } from '../providers/http/retry-policy.js';
import { waitForAction } from './action-waiter.js';

export interface WatchSettings {
  intervalMs: number;
  timeoutMs: number;
}

/**
 * Follows an action the caller did not wait for, in the background, and reports the
 * instance's new state once it settles (e.g. registers a created server once it runs).
 * Bounded by a timeout; every watch is cancelled on stop.
 */
export class LifecycleWatcher {
  private readonly running = new Set<AbortController>();

  constructor(
    private readonly settings: WatchSettings,
    private readonly logger: Logger,
  ) {}

  follow(
    provider: CloudProvider,
    before: Instance,
    action: ProviderAction | null,
    onSettled: (after: Instance) => Promise<void> | void,
    untilRunning = false,
  ): void {
    const ac = new AbortController();
    this.running.add(ac);
    const opts = { ...this.settings, signal: ac.signal };
    void (async () => {
      const deadline = Date.now() + this.settings.timeoutMs;
      if (action) await waitForAction(provider, action, opts);
      let after = await provider.get(before.provider_id, { signal: ac.signal });
      while (untilRunning && after.status !== 'running' && Date.now() < deadline) {
        await sleep(this.settings.intervalMs, ac.signal);
        after = await provider.get(before.provider_id, { signal: ac.signal });
      }
      await onSettled(after);
    })()
      .catch((err) => {
        if (!ac.signal.aborted) this.logger.warn({ err, instance: before.id, action: action?.type }, 'stopped following instance');
      })
      .finally(() => this.running.delete(ac));
  }

  get active(): number {
    return this.running.size;
  }

  stop(): void {
    for (const ac of this.running) ac.abort();
    this.running.clear();
  }
}
