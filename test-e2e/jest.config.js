import { jestConfig } from '@droplet-mesh/jest-preset';
export default jestConfig({ testTimeout: 120_000 });
