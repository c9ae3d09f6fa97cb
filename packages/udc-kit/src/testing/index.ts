export { freePort, waitFor } from './ports.js';
export { startNatsCluster, startNatsServer, type NatsServerHandle } from './nats-server.js';
export { startTestAuthority, type TestAuthority } from './authority.js';
export { udcConformanceSuite, conformanceTargetFromUrl, expectEnvelope, UDC_ENDPOINTS, type ConformanceTarget } from './conformance.js';
export { startPebble, type Pebble } from './pebble.js';
export { natsAuthHeaders, tokenOnlyRegistry } from './token-registry.js';
export { inFreshNode } from './fresh-node.js';
export { getViaNginx } from './http-get.js';
