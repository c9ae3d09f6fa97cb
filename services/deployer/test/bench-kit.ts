// What bench/deploy needs from this package's dependencies (it lives outside the package,
// so it cannot resolve them itself).
export { default as request } from 'supertest';
export { freePort, startNatsServer, startTestAuthority, tokenOnlyRegistry } from '@droplet-mesh/udc-kit/testing';
export { copyImages, startNamespacedEngine } from '@droplet-mesh/docker-testing';
export { default as Docker } from 'dockerode';
