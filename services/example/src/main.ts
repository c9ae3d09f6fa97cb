import { createExampleDroplet } from './example-droplet.js';

const droplet = createExampleDroplet({ env: process.env, name: process.env.EXAMPLE_NAME });
droplet.installSignalHandlers();
await droplet.start();
