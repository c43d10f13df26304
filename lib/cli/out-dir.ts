// The run directory of `crunet train --out`: made if missing, and checked writable before any work.
import * as fs from 'node:fs';
import * as path from 'node:path';

const WHY: Record<string, string> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a path component is a file, not a directory',
};

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  return WHY[code] ?? (e as Error).message;
}

/**
 * Makes `dir` (and its parents) and proves it writable by creating and removing a file in it. A failure is
 * an Error "cannot write to DIR: <why>". Node's recursive mkdir on a read-only file system reports
 * ENOENT for the missing directory, so a failed mkdir is explained by the nearest existing ancestor.
 */
export function prepareOutDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    let up = path.resolve(dir);
    while (!fs.existsSync(up) && path.dirname(up) !== up) up = path.dirname(up);
    let why = reason(e);
    try {
      fs.accessSync(up, fs.constants.W_OK);
    } catch (a) {
      why = reason(a);
    }
    throw new Error(`cannot write to ${dir}: ${why}`);
  }
  const probe = path.join(dir, `.crunet-write-test-${process.pid}`);
  try {
    fs.closeSync(fs.openSync(probe, 'w'));
    fs.unlinkSync(probe);
  } catch (e) {
    throw new Error(`cannot write to ${dir}: ${reason(e)}`);
  }
}
