// Writes stack.schema.json from the zod schema (run after `build`); a test checks the committed file matches.
import { writeFileSync } from 'node:fs';
import { stackJsonSchema } from '../dist/domain/stack-schema.js';

writeFileSync(new URL('../stack.schema.json', import.meta.url), `${JSON.stringify(stackJsonSchema(), null, 2)}\n`);
