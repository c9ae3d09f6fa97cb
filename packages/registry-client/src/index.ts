export { RegistryClient, type RegistryClientOptions, type RegistryClientLogger } from './registry-client.js';
export { RegistryError, callRegistry } from './http.js';
export type { DropletRecord, RecordInput, RecordKind, LivenessStatus, TokenResponse, Page } from './types.js';
export { DROPLET_ID_PATTERN, dropletIdToken, dropletIdFromToken, heartbeatSubject } from './droplet-id.js';
