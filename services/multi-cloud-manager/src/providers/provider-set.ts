import type Docker from 'dockerode';
import { DependencyUnavailable, type Logger } from '@droplet-mesh/udc-kit';
import type { Config } from '../config.js';
import { PROVIDER_NAMES, type CloudProvider, type ProviderName } from './cloud-provider.js';
import { DigitalOceanProvider } from './digitalocean/digitalocean-provider.js';
import { doErrorBody } from './digitalocean/digitalocean-mapping.js';
import { dockerFromHost } from './docker-client.js';
import { HetznerProvider } from './hetzner/hetzner-provider.js';
import { hzErrorBody } from './hetzner/hetzner-mapping.js';
import { ProviderHttpClient } from './http/provider-http-client.js';
import { LocalDockerProvider } from './local/local-provider.js';
import { VultrProvider } from './vultr/vultr-provider.js';
import { vuErrorBody } from './vultr/vultr-mapping.js';

export interface ProviderState {
  provider: ProviderName;
  status: 'configured' | 'not_configured';
  /** Why a provider is not configured (which variable to set). */
  hint?: string;
}

const TOKEN_VARIABLE: Record<Exclude<ProviderName, 'local'>, string> = {
  digitalocean: 'DO_TOKEN',
  hetzner: 'HETZNER_TOKEN',
  vultr: 'VULTR_TOKEN',
};

/** The providers this replica can drive, built once from configuration. */
export class ProviderSet {
  private constructor(
    private providers: Map<ProviderName, CloudProvider>,
    private clients: ProviderHttpClient[],
  ) {}

  static fromConfig(config: Config, deps: { logger: Logger; docker?: Docker }): ProviderSet {
    const providers = new Map<ProviderName, CloudProvider>();
    const clients: ProviderHttpClient[] = [];
    const client = (
      provider: ProviderName,
      baseUrl: string,
      token: string,
      parseError: ConstructorParameters<typeof ProviderHttpClient>[0]['parseError'],
      extra = {},
    ) => {
      const c = new ProviderHttpClient({
        provider,
        baseUrl,
        token,
        timeoutMs: config.PROVIDER_TIMEOUT_MS,
        maxPages: config.PROVIDER_MAX_PAGES,
        logger: deps.logger,
        parseError,
        ...extra,
      });
      clients.push(c);
      return c;
    };
    if (config.DO_TOKEN)
      providers.set(
        'digitalocean',
        new DigitalOceanProvider(client('digitalocean', config.DO_API_URL, config.DO_TOKEN, doErrorBody, { paceByHeaders: true })),
      );
    if (config.HETZNER_TOKEN)
      providers.set(
        'hetzner',
        new HetznerProvider(client('hetzner', config.HETZNER_API_URL, config.HETZNER_TOKEN, hzErrorBody, { paceByHeaders: true })),
      );
    if (config.VULTR_TOKEN)
      providers.set(
        'vultr',
        new VultrProvider(
          client('vultr', config.VULTR_API_URL, config.VULTR_TOKEN, vuErrorBody, { maxRequestsPerSecond: config.VULTR_MAX_RPS }),
        ),
      );
    if (config.LOCAL_PROVIDER_ENABLED)
      providers.set(
        'local',
        new LocalDockerProvider(deps.docker ?? dockerFromHost(config.DOCKER_HOST), {
          network: config.LOCAL_NETWORK,
          catalogImages: config.LOCAL_CATALOG_IMAGES,
        }),
      );
    return new ProviderSet(providers, clients);
  }

  /** For tests of the domain with in-memory providers. */
  static of(list: CloudProvider[]): ProviderSet {
    return new ProviderSet(new Map(list.map((p) => [p.name, p])), []);
  }

  has(name: ProviderName): boolean {
    return this.providers.has(name);
  }

  /** The provider, or DEPENDENCY_UNAVAILABLE naming the variable that would configure it. */
  get(name: ProviderName): CloudProvider {
    const p = this.providers.get(name);
    if (!p) {
      const hint = this.hint(name);
      throw new DependencyUnavailable(`provider '${name}' is not configured`, { provider: name, status: 'not_configured', hint });
    }
    return p;
  }

  configured(): CloudProvider[] {
    return [...this.providers.values()];
  }

  states(): ProviderState[] {
    return PROVIDER_NAMES.map((provider) =>
      this.providers.has(provider)
        ? { provider, status: 'configured' as const }
        : { provider, status: 'not_configured' as const, hint: this.hint(provider) },
    );
  }

  private hint(name: ProviderName): string {
    return name === 'local' ? 'set LOCAL_PROVIDER_ENABLED=true' : `set ${TOKEN_VARIABLE[name]}`;
  }

  /**
   * Take over `next`'s providers (a reload with new tokens or URLs): calls from now on use
   * them; the old ones are closed once their in-flight requests finish.
   */
  async replaceWith(next: ProviderSet): Promise<void> {
    const old = this.configured();
    this.providers = next.providers;
    this.clients = next.clients;
    await Promise.allSettled(old.map((p) => p.close?.()));
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.configured().map((p) => p.close?.()));
  }
}
