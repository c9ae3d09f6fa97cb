import { configOrExit } from '@droplet-mesh/udc-kit';
import { configSchema } from './config.js';
import { createHealthMonitor } from './health-monitor.js';

configOrExit(configSchema);
const monitor = createHealthMonitor({ env: process.env });
monitor.droplet.installSignalHandlers();
await monitor.start();
