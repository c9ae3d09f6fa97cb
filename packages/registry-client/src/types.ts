/** Shapes of the registry API (services/registry), shared by every client. */
export type RecordKind = 'service' | 'host';
export type LivenessStatus = 'active' | 'stale' | 'down';

export interface RecordInput {
  id: string;
  name?: string;
  url: string;
  kind: RecordKind;
  capabilities?: string[];
  version?: string;
  steward?: string;
  health_path?: string;
  domain?: string;
  heartbeat_interval_s?: number;
  metadata?: Record<string, unknown>;
}

export interface DropletRecord extends RecordInput {
  name: string;
  capabilities: string[];
  steward: string;
  status: LivenessStatus;
  registered_at: string;
  updated_at: string;
  last_heartbeat_at?: string;
  /** What the droplet reported in its last heartbeat. */
  last_report?: { status?: string; metrics?: Record<string, unknown> };
}

export interface TokenResponse {
  token: string;
  expires_at: string;
}

export interface Page<T> {
  items: T[];
  pagination: { page: number; per_page: number; total: number; next_page: number | null };
}
