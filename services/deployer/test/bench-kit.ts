// What bench/deploy needs from this package's dependencies (it lives outside the package,
// so it cannot resolve them itself).
export { default as request } from 'supertest';
export { freePort, startNatsServer, startTestAuthority } from '@droplet-mesh/udc-kit/testing';
