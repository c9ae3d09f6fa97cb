// The one port every provider adapter implements, and the unified model it speaks.

export const PROVIDER_NAMES = ['digitalocean', 'hetzner', 'vultr', 'local'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

export const INSTANCE_STATUSES = ['provisioning', 'running', 'off', 'deleting', 'error', 'unknown'] as const;
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];

export const POWER_ACTIONS = ['power_on', 'power_off', 'shutdown', 'reboot'] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

/** Tag (label key on Hetzner and Docker) that marks an instance as created and managed here. */
export const MANAGED_TAG = 'droplet-mesh';

export interface Instance {
  /** `<provider>:<provider_id>`, unique across providers. */
  id: string;
  provider: ProviderName;
  provider_id: string;
  name: string;
  status: InstanceStatus;
  /** The provider's own status words, kept for operators. */
  raw_status: string;
  ipv4: string | null;
  ipv6: string | null;
  private_ip: string | null;
  region: string | null;
  size: string | null;
  image: string | null;
  tags: string[];
  labels: Record<string, string>;
  created_at: string | null;
  price_monthly: number | null;
  managed: boolean;
}

export type ActionStatus = 'in_progress' | 'completed' | 'errored';

/** An asynchronous provider operation; poll it with `getAction` or wait with `waitForAction`. */
export interface ProviderAction {
  id: string;
  provider: ProviderName;
  type: string;
  status: ActionStatus;
  raw_status: string;
  resource_id: string | null;
  started_at: string | null;
  completed_at: string | null;
  error?: string;
}

export interface CreateInstanceInput {
  name: string;
  region: string;
  size: string;
  image: string;
  tags: string[];
  labels: Record<string, string>;
  user_data?: string;
  ssh_keys?: string[];
  /** Local provider only: the container command. */
  command?: string[];
}

export interface CreateOptions extends CallOptions {
  /** The caller may create from any image the provider has, not only its catalog (local: the `admin` scope). */
  anyImage?: boolean;
}

export interface CreateResult {
  instance: Instance;
  action: ProviderAction | null;
}

export interface Size {
  provider: ProviderName;
  slug: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  price_hourly: number | null;
  price_monthly: number | null;
  currency: string;
  regions: string[];
}

export interface Image {
  provider: ProviderName;
  id: string;
  slug: string | null;
  name: string;
  distribution: string | null;
  type: string;
}

export interface Region {
  provider: ProviderName;
  slug: string;
  name: string;
  available: boolean;
  country: string | null;
}

export interface Snapshot {
  provider: ProviderName;
  id: string;
  name: string;
  resource_id: string | null;
  created_at: string | null;
  size_gb: number | null;
  status: string;
}

export interface SnapshotResult {
  snapshot: Snapshot | null;
  action: ProviderAction | null;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface CloudProvider {
  readonly name: ProviderName;
  /** Currency of prices this provider reports. */
  readonly currency: string;
  /** Its instances carry no price: take it from the size catalog (Vultr). */
  readonly pricesFromCatalog?: boolean;
  /**
   * Instances it did not create are not the mesh's to show or touch (the local engine runs
   * the droplets and deployed apps): callers without `admin` see them as absent, and
   * `admin` needs `force` for any action on them.
   */
  readonly guardsUnmanaged?: boolean;
  list(opts?: CallOptions): Promise<Instance[]>;
  get(id: string, opts?: CallOptions): Promise<Instance>;
  create(input: CreateInstanceInput, opts?: CreateOptions): Promise<CreateResult>;
  /** Returns the provider's action when deletion is asynchronous, null when it is done. */
  delete(id: string, opts?: CallOptions): Promise<ProviderAction | null>;
  power(id: string, action: PowerAction, opts?: CallOptions): Promise<ProviderAction>;
  /** Current state of an action returned earlier. */
  getAction(action: ProviderAction, opts?: CallOptions): Promise<ProviderAction>;
  sizes(opts?: CallOptions): Promise<Size[]>;
  images(opts?: CallOptions): Promise<Image[]>;
  regions(opts?: CallOptions): Promise<Region[]>;
  snapshots(opts?: CallOptions): Promise<Snapshot[]>;
  createSnapshot(id: string, name: string, opts?: CallOptions): Promise<SnapshotResult>;
  /** Proves the API answers and the token is valid; throws a UDC error otherwise. */
  ping(opts?: CallOptions): Promise<void>;
  close?(): Promise<void>;
}

export function instanceId(provider: ProviderName, providerId: string): string {
  return `${provider}:${providerId}`;
}

/** Tags with a colon carry labels on providers that only have tags (DigitalOcean, Vultr). */
export function splitTags(all: string[]): { tags: string[]; labels: Record<string, string> } {
  const tags: string[] = [];
  const labels: Record<string, string> = {};
  for (const t of all) {
    const i = t.indexOf(':');
    if (i > 0) labels[t.slice(0, i)] = t.slice(i + 1);
    else tags.push(t);
  }
  return { tags, labels };
}

export function joinTags(tags: string[], labels: Record<string, string>): string[] {
  return [...new Set([...tags, ...Object.entries(labels).map(([k, v]) => `${k}:${v}`)])];
}

export function emptyToNull(v: string | null | undefined): string | null {
  return v && v !== '0.0.0.0' && v !== '::' ? v : null;
}
