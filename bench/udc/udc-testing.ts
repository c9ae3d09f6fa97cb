// udc-kit's test helpers without its conformance suite: `@droplet-mesh/udc-kit/testing`
// imports @jest/globals, which cannot load outside jest. Until udc-kit exports these
// separately, take them from its build output (the one place to change when it does).
export { startNatsServer, type NatsServerHandle } from '../../packages/udc-kit/dist/testing/nats-server.js';
export { startTestAuthority, type TestAuthority } from '../../packages/udc-kit/dist/testing/authority.js';
export { freePort, waitFor } from '../../packages/udc-kit/dist/testing/ports.js';
