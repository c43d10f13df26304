// scripts/install.js's decision to build the addon from source: npm's --build-from-source flag forms
// and the per-package form (--build-from-source=sqlite3) that other packages' install tools honour.
import { strict as assert } from 'node:assert';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { ROOT } from './support/spawn.js';

const { wantsSourceBuild } = createRequire(__filename)(path.join(ROOT, 'scripts', 'install.js')) as {
  wantsSourceBuild: (env: Record<string, string | undefined>) => boolean;
};

describe('install script: when to build from source', () => {
  it('builds for npm --build-from-source alone (true), with an empty value, or 1', () => {
    for (const v of ['true', '', '1']) assert.equal(wantsSourceBuild({ npm_config_build_from_source: v }), true, `'${v}'`);
  });

  it('builds when a per-package list names crunet', () => {
    for (const v of ['crunet', 'sqlite3,crunet', 'crunet, sharp'])
      assert.equal(wantsSourceBuild({ npm_config_build_from_source: v }), true, `'${v}'`);
  });

  it('does not build when the list names only other packages, or the flag is off', () => {
    for (const v of ['sqlite3', 'sqlite3,sharp', 'crunet-cuda-linux-x64', 'false', '0'])
      assert.equal(wantsSourceBuild({ npm_config_build_from_source: v }), false, `'${v}'`);
    assert.equal(wantsSourceBuild({}), false);
  });

  it('builds for CRUNET_BUILD_FROM_SOURCE=1 whatever npm was given', () => {
    assert.equal(wantsSourceBuild({ CRUNET_BUILD_FROM_SOURCE: '1' }), true);
    assert.equal(wantsSourceBuild({ CRUNET_BUILD_FROM_SOURCE: '1', npm_config_build_from_source: 'sqlite3' }), true);
    assert.equal(wantsSourceBuild({ CRUNET_BUILD_FROM_SOURCE: '0' }), false);
  });
});
