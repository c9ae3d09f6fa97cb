import { configOrExit } from '@droplet-mesh/udc-kit';
import { createMultiCloudDroplet } from './app.js';
import { configSchema } from './config.js';

// Fail fast with one clear line per bad variable before anything starts.
configOrExit(configSchema);
const droplet = createMultiCloudDroplet({ env: process.env });
droplet.installSignalHandlers();
await droplet.start();
