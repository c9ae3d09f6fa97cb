import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/** Writes each package's totals where scripts/run-tests.mjs adds them up. */
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const dir = process.env.MESH_TEST_RESULTS_DIR;
    if (!dir) return;
    const pkg = basename(process.cwd());
    writeFileSync(
      join(dir, `${pkg}-${process.pid}.json`),
      JSON.stringify({
        package: pkg,
        passed: results.numPassedTests,
        failed: results.numFailedTests,
        skipped: results.numPendingTests + results.numTodoTests,
        suitesFailed: results.numFailedTestSuites + (results.numRuntimeErrorTestSuites ?? 0),
      }),
    );
  }
}
