// `crunet` from the TypeScript sources, as bin/crunet.js runs the compiled CLI (test/support/cli-child.ts).
import { main } from '../../lib/cli/main.js';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
