// `npm test`: install the world, check formatting, lint and types, then run every package's tests
// and print one closing line counting every test. Package suites run two at a time: they
// mostly wait on real nginx, NATS and Docker, so on 2 cores two overlap well (each suite
// runs its files one at a time). The e2e suite starts whole meshes and runs alone, last.
// Arguments (e.g. `npm test -- --filter=@droplet-mesh/deployer`) run one turbo pass as given.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureWorld, log, ROOT, runScript, SetupError } from './ensure-world.mjs';

await runScript(async () => {
  ensureWorld('test');

  log('checking format and lint (biome)');
  if (spawnSync('pnpm', ['exec', 'biome', 'ci', '.'], { cwd: ROOT, stdio: 'inherit' }).status !== 0)
    throw new SetupError('format or lint check failed (above); `npm run format` fixes formatting');

  // jest strips types without checking them: every package's sources and tests are checked here.
  log('type-checking every package, tests included (tsc)');
  const typecheck = ['--recursive', '--workspace-concurrency=2', '--reporter=append-only', 'run', 'typecheck'];
  if (spawnSync('pnpm', typecheck, { cwd: ROOT, stdio: 'inherit' }).status !== 0) throw new SetupError('type errors (above)');

  const resultsDir = join(ROOT, '.test-results');
  rmSync(resultsDir, { recursive: true, force: true });
  mkdirSync(resultsDir, { recursive: true });
  process.env.MESH_TEST_RESULTS_DIR = resultsDir;

  const turbo = (args) =>
    spawnSync('pnpm', ['exec', 'turbo', 'run', 'test', '--continue', '--env-mode=loose', ...args], { cwd: ROOT, stdio: 'inherit' }).status;
  const given = process.argv.slice(2);
  let status;
  if (given.length > 0) {
    log('running the tests asked for');
    status = turbo(['--concurrency=1', ...given]);
  } else {
    log('running every package test, two packages at a time');
    const packages = turbo(['--concurrency=2', '--filter=!@droplet-mesh/test-e2e']);
    log('running the end-to-end tests');
    const e2e = turbo(['--concurrency=1', '--filter=@droplet-mesh/test-e2e']);
    status = packages || e2e;
  }

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const failedSuites = [];
  const failures = [];
  for (const f of readdirSync(resultsDir)) {
    const r = JSON.parse(readFileSync(join(resultsDir, f), 'utf8'));
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped;
    if (r.failed || r.suitesFailed) failedSuites.push(`${r.package} (${r.failed} failed, ${r.suitesFailed} suites failed)`);
    for (const t of r.failures ?? []) failures.push(`${r.package}/${t.file} › ${t.test}\n${t.message}`);
  }
  // Repeated at the very end so a log cut to its tail still says what failed and why.
  if (failures.length) log(`failed tests:\n\n${failures.join('\n\n')}\n`);
  if (failedSuites.length) log(`failing packages: ${failedSuites.join(', ')}`);
  process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(status === 0 && failed === 0 ? 0 : 1);
});
