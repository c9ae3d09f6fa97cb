import { createExampleDroplet } from './example-droplet.js';

const droplet = createExampleDroplet({ env: process.env });
droplet.installSignalHandlers();
await droplet.start();
