export type {
  ContractViolation,
  EmulatorHandle,
  EmulatorOptions,
  FaultSpec,
  PagingFaultSpec,
  ProviderName,
  RequestRecord,
} from './core/types.js';
export { defaultToken } from './core/emulator-server.js';
export { resolveOpenapiDir } from './core/spec-dir.js';
export { OpenApiContract, loadContract } from './core/openapi-contract.js';
export { startDigitalOceanEmulator, type DigitalOceanEmulatorOptions } from './digitalocean/index.js';
export { startHetznerEmulator, type HetznerEmulatorOptions } from './hetzner/index.js';
export { startVultrEmulator, type VultrEmulatorOptions } from './vultr/index.js';
export { startAllEmulators, type AllEmulators, type AllEmulatorsOptions } from './start-all.js';
