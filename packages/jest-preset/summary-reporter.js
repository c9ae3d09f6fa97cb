import { writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

// Enough of each failure to name the cause when CI shows only the end of the log; stack
// frames inside jest and other libraries say nothing about it.
const MESSAGE_LINES = 12;

/** Writes each package's totals, and what failed, where scripts/run-tests.mjs adds them up. */
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const dir = process.env.MESH_TEST_RESULTS_DIR;
    if (!dir) return;
    const pkg = basename(process.cwd());
    const failures = [];
    for (const suite of results.testResults) {
      const file = relative(process.cwd(), suite.testFilePath);
      if (suite.testExecError) failures.push({ file, test: '(suite did not run)', message: firstLines(suite.testExecError.message) });
      for (const t of suite.testResults) {
        if (t.status === 'failed') failures.push({ file, test: t.fullName, message: firstLines(t.failureMessages.join('\n')) });
      }
    }
    writeFileSync(
      join(dir, `${pkg}-${process.pid}.json`),
      JSON.stringify({
        package: pkg,
        passed: results.numPassedTests,
        failed: results.numFailedTests,
        skipped: results.numPendingTests + results.numTodoTests,
        suitesFailed: results.numFailedTestSuites + (results.numRuntimeErrorTestSuites ?? 0),
        failures,
      }),
    );
  }
}

function firstLines(text) {
  return String(text ?? '')
    .split('\n')
    .filter((line) => !line.includes('/node_modules/'))
    .slice(0, MESSAGE_LINES)
    .join('\n');
}
