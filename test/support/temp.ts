// Temporary directories that are removed after each test whether it passed or failed: a test calls
// testTempDir(tag), its describe registers afterEach(removeTestTempDirs).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

export function testTempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `crunet-${tag}-`));
  made.push(dir);
  return dir;
}

export function removeTestTempDirs(): void {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
