import { Bus, configOrExit } from '@droplet-mesh/udc-kit';
import { createProxyManager, proxyManagerConfigSchema } from './app.js';

const config = configOrExit(proxyManagerConfigSchema);
const bus = await Bus.fromConfig(config, 'proxy-manager');
const manager = createProxyManager({ env: process.env, bus });
manager.droplet.installSignalHandlers();
await manager.start();
