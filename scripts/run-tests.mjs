// `npm test`: install the world, check formatting and lint, then run every package's tests
// (e2e included) one package at a time (the machine has 2 cores; suites start real nginx,
// NATS and Docker), and print one closing line counting every test.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureWorld, log, ROOT, runScript, SetupError } from './ensure-world.mjs';

await runScript(async () => {
  ensureWorld('test');

  log('checking format and lint (biome)');
  if (spawnSync('pnpm', ['exec', 'biome', 'ci', '.'], { cwd: ROOT, stdio: 'inherit' }).status !== 0)
    throw new SetupError('format or lint check failed (above); `npm run format` fixes formatting');

  const resultsDir = join(ROOT, '.test-results');
  rmSync(resultsDir, { recursive: true, force: true });
  mkdirSync(resultsDir, { recursive: true });
  process.env.MESH_TEST_RESULTS_DIR = resultsDir;

  log('running every test');
  const res = spawnSync(
    'pnpm',
    ['exec', 'turbo', 'run', 'test', '--concurrency=1', '--continue', '--env-mode=loose', ...process.argv.slice(2)],
    { cwd: ROOT, stdio: 'inherit' },
  );

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const failedSuites = [];
  for (const f of readdirSync(resultsDir)) {
    const r = JSON.parse(readFileSync(join(resultsDir, f), 'utf8'));
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped;
    if (r.failed || r.suitesFailed) failedSuites.push(`${r.package} (${r.failed} failed, ${r.suitesFailed} suites failed)`);
  }
  if (failedSuites.length) log(`failing packages: ${failedSuites.join(', ')}`);
  process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(res.status === 0 && failed === 0 ? 0 : 1);
});
