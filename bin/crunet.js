#!/usr/bin/env node
'use strict';
// The `crunet` command: runs the compiled CLI (npm run build makes dist/).
const path = require('node:path');
let cli;
try {
  cli = require(path.join(__dirname, '..', 'dist', 'lib', 'cli', 'main.js'));
} catch (e) {
  if (e.code !== 'MODULE_NOT_FOUND') throw e;
  console.error("crunet: the TypeScript build is missing (dist/). Run 'npm run build' in " + path.join(__dirname, '..'));
  process.exit(1);
}
cli.main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
