import { configOrExit } from '@droplet-mesh/udc-kit';
import { createConsoleDroplet } from './app.js';
import { consoleConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects.
configOrExit(consoleConfigSchema);
const { droplet } = createConsoleDroplet({ env: process.env });
droplet.installSignalHandlers();
await droplet.start();
