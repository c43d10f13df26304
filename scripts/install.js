#!/usr/bin/env node
'use strict';
// package.json's "install" script, run by npm in an installed crunet (README "Install"). With the
// prebuilt addon (linux-x64, glibc) it only checks that the addon loads and does nothing else: no
// compiler, Python or system package is needed. It builds the addon from source (node-gyp, binding.gyp)
// when asked (npm install --build-from-source, or CRUNET_BUILD_FROM_SOURCE=1) or when no prebuilt addon
// runs here; before building, it checks for what the build needs and names everything that is missing in
// one message instead of node-gyp's output. Runs on plain Node (no dependencies, no TypeScript).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const log = (m) => console.error(`crunet: ${m}`);

/**
 * Whether the install was asked to build crunet from source. npm puts --build-from-source into
 * npm_config_build_from_source as 'true' (alone) or '' (`--build-from-source=`), and the per-package form
 * that node-pre-gyp and prebuild-install honour, `--build-from-source=sqlite3,crunet`, as the names: a
 * build from source asked for another package must not make crunet build (and fail without a compiler).
 */
function wantsSourceBuild(env) {
  const npmFlag = env.npm_config_build_from_source;
  if (npmFlag !== undefined) {
    if (npmFlag === '' || npmFlag === 'true' || npmFlag === '1') return true;
    if (npmFlag.split(',').map((name) => name.trim()).includes('crunet')) return true;
  }
  const own = env.CRUNET_BUILD_FROM_SOURCE;
  return own !== undefined && own !== '' && own !== 'false' && own !== '0';
}

function main() {
  const fromSource = wantsSourceBuild(process.env);
  // A source checkout (npm ci there) is built by scripts/setup.sh with cmake-js, not here.
  if (fs.existsSync(path.join(root, 'lib', 'index.ts')) && !fromSource) return 0;
  if (!fromSource) {
    const why = prebuiltLoads();
    if (!why) return 0;
    log(`${why}; building it from source instead`);
  }
  return buildFromSource();
}

/** undefined when the prebuilt addon loads here, else why not (platform.ts's wording). */
function prebuiltLoads() {
  const platform = require(path.join(root, 'dist', 'lib', 'engine', 'platform.js'));
  const problem = platform.prebuiltProblem(platform.platformFacts());
  if (problem) return problem;
  const addon = path.join(root, platform.PREBUILT.dir, platform.PREBUILT.addon);
  if (!fs.existsSync(addon)) return `the package has no prebuilt addon (${addon})`;
  const missing = platform.missingBundled(path.dirname(addon));
  if (missing.length) return `the prebuilt addon's libraries are missing: ${missing.join(', ')}`;
  // In a child process: loading starts the addon's engine thread, which this script need not keep.
  const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', addon], { encoding: 'utf8' });
  if (r.status !== 0) return `the prebuilt addon does not load here (${(r.stderr || '').split('\n').find((l) => /Error/.test(l)) || `exit ${r.status}`})`;
  return undefined;
}

function works(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

/** What the node-gyp build needs and does not find, as "name (why)" strings. */
function missingPrerequisites() {
  const missing = [];
  const cxx = process.env.CXX || 'g++';
  if (!works(cxx, ['--version'])) missing.push(`a C++17 compiler (${cxx}; package g++)`);
  if (!works('make', ['--version'])) missing.push('make');
  const python = process.env.npm_config_python || process.env.PYTHON || 'python3';
  if (!works(python, ['--version'])) missing.push(`Python 3 for node-gyp (${python}; package python3)`);
  const header = ['/usr/include/oneapi/dnnl/dnnl.hpp', '/usr/local/include/oneapi/dnnl/dnnl.hpp'].find((h) => fs.existsSync(h));
  if (!header) missing.push('oneDNN headers and library (oneapi/dnnl/dnnl.hpp, libdnnl.so; package libdnnl-dev)');
  return missing;
}

function buildFromSource() {
  const missing = missingPrerequisites();
  if (missing.length) {
    log(`cannot build the native addon from source: missing ${missing.join(', ')}.\n` +
      `  On Debian/Ubuntu: apt-get install g++ make python3 libdnnl-dev, then 'CRUNET_BUILD_FROM_SOURCE=1 npm rebuild crunet'.\n` +
      `  On linux-x64 with glibc >= 2.34 no build is needed: the package's prebuilt addon is used unless a build from source is asked for.`);
    return 1;
  }
  // npm passes its own node-gyp; Node's headers come from Node's install when it has them (no download).
  let gyp = process.env.npm_config_node_gyp;
  if (!gyp) {
    try {
      gyp = require.resolve('node-gyp/bin/node-gyp.js');
    } catch {
      log("node-gyp was not found: build through npm, which brings its own ('CRUNET_BUILD_FROM_SOURCE=1 npm rebuild crunet')");
      return 1;
    }
  }
  const args = [gyp, 'rebuild'];
  const nodedir = path.resolve(process.execPath, '..', '..');
  if (fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);
  const logFile = path.join(root, 'build-from-source.log');
  log(`building the native addon from source (node-gyp; a few minutes; log: ${logFile})`);
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20 });
  fs.writeFileSync(logFile, `${r.stdout || ''}${r.stderr || ''}${r.error ? String(r.error) : ''}`);
  if (r.status !== 0) {
    const errors = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /error/i.test(l) && !/^gyp (ERR|info)/.test(l)).slice(0, 5);
    log(`building the native addon from source failed (node-gyp exit ${r.status}; full output in ${logFile}):\n` +
      `${errors.map((l) => `  ${l.trim()}`).join('\n')}\n` +
      `  The build needs g++ (C++17), make, python3 and oneDNN (Debian/Ubuntu: libdnnl-dev).`);
    return 1;
  }
  log('built build/Release/crunet.node from source');
  return 0;
}

// Run by npm; required by test/install-script.test.ts for wantsSourceBuild only.
if (require.main === module) process.exitCode = main();
module.exports = { wantsSourceBuild };
