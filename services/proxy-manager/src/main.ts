import { Bus, configOrExit } from '@droplet-mesh/udc-kit';
import { createProxyManager, proxyManagerConfigSchema } from './app.js';

const config = configOrExit(proxyManagerConfigSchema);
const bus = await Bus.connect({ url: config.NATS_URL, name: 'proxy-manager', user: config.NATS_USER, pass: config.NATS_PASSWORD });
const manager = createProxyManager({ env: process.env, bus });
manager.droplet.installSignalHandlers();
await manager.start();
