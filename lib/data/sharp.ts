// sharp (libvips) decodes and resizes images for image folders. It is an optional peer dependency
// (README "Install"): IDX and CIFAR users never need it, and it is most of what an install would
// otherwise download. This module is not part of the public entry point, so that crunet's type
// declarations do not name sharp's.
type Sharp = typeof import('sharp');
let sharpModule: Sharp | undefined;

/**
 * sharp, loaded on first use; `purpose` says what needed it ("image folders"). On glibc Linux it must also
 * be loaded by the main thread before any worker thread does (sharp's docs), which creating a FolderDataset
 * on the main thread guarantees.
 */
export function loadSharp(purpose = 'image folders'): Sharp {
  if (!sharpModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      sharpModule = require('sharp') as Sharp;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'MODULE_NOT_FOUND' && /'sharp'/.test(err.message))
        throw new Error(`${purpose} need the 'sharp' package, which is not installed: run 'npm install sharp' (crunet works with sharp 0.34)`, { cause: e });
      throw new Error(`${purpose} need the 'sharp' package, which failed to load: ${err.message}`, { cause: e });
    }
  }
  return sharpModule;
}
