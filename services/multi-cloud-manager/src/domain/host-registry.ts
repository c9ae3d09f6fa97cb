import type { Logger, RegistryLink } from '@droplet-mesh/udc-kit';
import type { Instance } from '../providers/cloud-provider.js';

/** Registry ids are short lowercase slugs: container ids are cut to Docker's 12-character form. */
export function hostRecordId(i: Instance): string {
  const id = i.provider === 'local' ? i.provider_id.slice(0, 12) : i.provider_id;
  return `host-${i.provider}-${id}`
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 63);
}

/**
 * How the health-monitor recovers a host: reboot it through us (`instance.reboot` with
 * provider and instance_id from this record), then tell a person. Never `restart`: the
 * deployer restarts apps, not machines.
 */
export const HOST_RECOVERY = ['reboot', 'alert'] as const;

/**
 * Servers this droplet created, as `kind: host` records in the registry. Best effort:
 * a registry that is down is logged, never a failed create. No registry link, no-op.
 */
export class HostRegistry {
  constructor(
    private readonly link: () => RegistryLink | undefined,
    private readonly logger: Logger,
  ) {}

  async register(i: Instance): Promise<boolean> {
    const link = this.link();
    if (!link || !i.ipv4) return false;
    try {
      await link.upsertRecord({
        id: hostRecordId(i),
        name: i.name,
        kind: 'host',
        url: `http://${i.ipv4}`,
        metadata: { provider: i.provider, instance_id: i.provider_id, region: i.region, recovery: [...HOST_RECOVERY] },
      });
      return true;
    } catch (err) {
      this.logger.warn({ err, instance: i.id }, 'could not register host in the registry');
      return false;
    }
  }

  async remove(i: Instance): Promise<void> {
    const link = this.link();
    if (!link) return;
    try {
      await link.removeRecord(hostRecordId(i));
    } catch (err) {
      this.logger.warn({ err, instance: i.id }, 'could not remove host from the registry');
    }
  }
}
