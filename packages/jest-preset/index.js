import { fileURLToPath } from 'node:url';

// Shared jest config: TypeScript through swc (type-checking is tsc's job in `build`),
// native ESM, `.js` import suffixes mapped back to the `.ts` sources.
export function jestConfig(overrides = {}) {
  return {
    testEnvironment: 'node',
    extensionsToTreatAsEsm: ['.ts'],
    transform: {
      '^.+\\.ts$': [
        '@swc/jest',
        {
          jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
          module: { type: 'es6' },
          sourceMaps: 'inline',
        },
      ],
    },
    moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
    testMatch: ['<rootDir>/test/**/*.test.ts'],
    testTimeout: 30000,
    reporters: ['default', fileURLToPath(new URL('./summary-reporter.js', import.meta.url))],
    maxWorkers: 1,
    // Libraries keep timers (rate-limit windows, reconnect backoff); never let them hold a finished run open.
    forceExit: true,
    ...overrides,
  };
}
export default jestConfig();
