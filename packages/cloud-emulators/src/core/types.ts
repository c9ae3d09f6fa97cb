export type ProviderName = 'digitalocean' | 'hetzner' | 'vultr';

/** One request the emulator answered, for asserting request counts in tests. */
export interface RequestRecord {
  method: string;
  /** Full path as received, including the version prefix (`/v2/droplets`), without the query string. */
  path: string;
  query: Record<string, unknown>;
  status: number;
  /** Epoch milliseconds when the request arrived. */
  at: number;
}

/** A request or response that does not match the provider's OpenAPI description. */
export interface ContractViolation {
  kind: 'request' | 'response';
  method: string;
  path: string;
  operationId?: string;
  status?: number;
  /** Human-readable validator messages, e.g. `/requestBody/name must be string`. */
  errors: string[];
}

export interface FaultSpec {
  /** HTTP status to answer with, in the provider's error shape. */
  status: number;
  /** How many matching requests fail before the fault clears (default 1). */
  times?: number;
  /** Only requests whose path (with version prefix, without query) matches fail. Default: every path. */
  pathPattern?: RegExp;
  /** Only requests with this method (GET, POST, ...) fail. Default: every method. */
  method?: string;
}

/**
 * A listing whose paging misbehaves, as real APIs now and then do. Applies to every list
 * response whose path matches, until `clearFaults()`.
 */
export interface PagingFaultSpec {
  /**
   * - `repeat-next`: every page after the first hands back, as its next cursor (Vultr) or next
   *   page link (DigitalOcean `links.pages.next`, Hetzner `next_page` and `Link`), the one it was
   *   asked with: a server stuck on one page. The first page's next is the usual one, or, when the
   *   listing fits on one page, the first page again.
   * - `endless`: every page says another follows, also past the last item (empty pages), with a
   *   fresh cursor or page number each time; Hetzner's `last_page` is null.
   * - `none`: paging as usual; only `total` changes.
   */
  mode: 'repeat-next' | 'endless' | 'none';
  /**
   * Report this many items in total (`meta.total`, Hetzner `total_entries` and `last_page`)
   * instead of the real count; `null` leaves the total out (not what the OpenAPI files allow
   * for DigitalOcean and Vultr: such responses land in `contractViolations`).
   */
  total?: number | null;
  /** Only list requests whose path (with version prefix) matches. Default: every listing. */
  pathPattern?: RegExp;
}

export interface EmulatorOptions {
  /** Port on 127.0.0.1; 0 (default) lets the OS pick a free one. */
  port?: number;
  /** The bearer token the emulator accepts (default `test-token`). Anything else gets the provider's 401. */
  token?: string;
  /** Delay added before every response (default 0). Change later with `setLatency`. */
  latencyMs?: number;
  /** Servers created at start, already running (default 0). */
  seedInstances?: number;
  /** Tags (DO, Vultr) / label keys (Hetzner, value `"true"`) given to seeded servers (default `["seed"]`). */
  seedTags?: string[];
  /** How long async actions and state transitions take (default 1500 ms). */
  actionDurationMs?: number;
  /** Validate every request and response against the provider's OpenAPI file (default true). */
  validateContract?: boolean;
  /** Directory holding the OpenAPI files (default: this package's `openapi/`, or `CLOUD_OPENAPI_DIR`). */
  openapiDir?: string;
  /** Clock in epoch milliseconds (default `Date.now`). */
  now?: () => number;
}

export interface EmulatorHandle {
  readonly provider: ProviderName;
  /**
   * `http://127.0.0.1:<port>`: the origin only. Every API path starts with the
   * provider's version prefix after it (`/v2/...` for DigitalOcean and Vultr, `/v1/...` for Hetzner).
   */
  readonly url: string;
  /**
   * The URL that plays the role of the provider's published server URL:
   * DigitalOcean `url` (like https://api.digitalocean.com), Hetzner `url + '/v1'`
   * (like https://api.hetzner.cloud/v1), Vultr `url + '/v2'` (like https://api.vultr.com/v2).
   */
  readonly apiUrl: string;
  readonly port: number;
  readonly token: string;
  /** Every request answered so far (live array). */
  readonly requests: RequestRecord[];
  /** Every contract violation seen so far (live array). */
  readonly contractViolations: ContractViolation[];
  setLatency(ms: number): void;
  injectFault(fault: FaultSpec): void;
  /** Misbehaving paging on list responses (see `PagingFaultSpec`) until `clearFaults()`. */
  injectPagingFault(fault: PagingFaultSpec): void;
  /** Clears injected faults, paging faults included. */
  clearFaults(): void;
  /** Empties `requests` and `contractViolations`. */
  resetRecords(): void;
  close(): Promise<void>;
}
