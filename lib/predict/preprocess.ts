// A new image as the model's input, by the preprocessing its checkpoint recorded (lib/data/dataset.ts's
// Preprocessing): decoded with sharp, transparency composited onto the background, the shorter side resized
// to `resize` (or to the input size when none is recorded) and the centre cropped to the input size, then
// each 8-bit value v of channel c becomes (v * scale - mean[c]) / std[c], CHW.
import { BadImageError, type Preprocessing } from '../data/dataset.js';
import { resizeCentreCrop, type ResizeKernel } from '../data/augment.js';
import { DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, readImageFile } from '../data/folder.js';
import { loadSharp } from '../data/sharp.js';

/** An image file's path, or its encoded bytes (PNG, JPEG, WebP, ... as sharp decodes). */
export type ImageInput = string | Uint8Array;

export interface ImageLimits {
  /** Refuse files larger than this unread (default 64 MiB). */
  maxImageBytes?: number;
  /** Refuse images with more pixels before decoding them (default 178956970, Pillow's bomb limit). */
  maxImagePixels?: number;
}

/**
 * torchvision's ImageNet evaluation transform (Resize(256), CenterCrop(224), ToTensor, Normalize with
 * ImageNet's mean and std): what its pretrained ResNets expect, and what `crunet convert` records.
 */
export const TORCHVISION_IMAGENET: Preprocessing = Object.freeze({
  scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], layout: 'NCHW', channels: 3,
  size: [224, 224] as [number, number], resize: 256, kernel: 'linear', background: [255, 255, 255] as [number, number, number],
}) as Preprocessing;

/** A name for an input in messages: its path, or "image N (a buffer of B bytes)". */
export function describeInput(input: ImageInput, index: number): string {
  return typeof input === 'string' ? input : `image ${index} (a buffer of ${input?.byteLength} bytes)`;
}

/**
 * Decodes one image into out[offset, offset + C*H*W). An image that cannot be read or decoded is a
 * BadImageError naming it (the file's path, or the buffer's place in the call).
 */
export async function preprocessImage(input: ImageInput, index: number, pre: Preprocessing, out: Float32Array, offset: number, limits: ImageLimits = {}): Promise<void> {
  const label = describeInput(input, index);
  let bytes: Uint8Array;
  if (typeof input === 'string') bytes = await readImageFile(input, limits.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES);
  else if (input instanceof Uint8Array) bytes = input;
  else throw new TypeError(`predict: expected image file paths or Buffers/Uint8Arrays of encoded images, but received ${input === null ? 'null' : typeof input} at index ${index}`);
  const [h, w] = pre.size;
  const c = pre.channels;
  const maxPixels = limits.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  const sharp = loadSharp('predictions from image files');
  let data: Buffer;
  try {
    if (bytes.byteLength === 0) throw new Error('it is empty (0 bytes)');
    const { width: iw, height: ih } = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (!iw || !ih) throw new Error('no image size in the header');
    if (iw * ih > maxPixels) throw new Error(`${iw}x${ih} is ${iw * ih} pixels, over the limit of ${maxPixels} (maxImagePixels)`);
    const bg = pre.background ?? [255, 255, 255];
    const g = resizeCentreCrop(iw, ih, pre.resize ?? Math.max(h, w), Math.max(h, w));
    let img = sharp(bytes, { limitInputPixels: maxPixels }).flatten({ background: { r: bg[0], g: bg[1], b: bg[2] } })
      .resize(g.width, g.height, { fit: 'fill', kernel: (pre.kernel ?? 'linear') as ResizeKernel })
      .extract({ ...g.box, width: w, height: h, left: Math.round((g.width - w) / 2), top: Math.round((g.height - h) / 2) });
    img = c === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
    const r = await img.raw().toBuffer({ resolveWithObject: true });
    if (r.info.width !== w || r.info.height !== h || r.info.channels !== c) {
      throw new Error(`decoded to ${r.info.width}x${r.info.height}x${r.info.channels}, expected ${w}x${h}x${c}`);
    }
    data = r.data;
  } catch (e) {
    const file = typeof input === 'string' ? input : label;
    throw new BadImageError(`${label}: cannot decode as an image: ${(e as Error).message}`, file, e);
  }
  // HWC bytes -> normalised CHW floats.
  const plane = h * w;
  for (let ch = 0; ch < c; ch++) {
    const k = pre.scale / pre.std[ch]!, b = pre.mean[ch]! / pre.std[ch]!;
    for (let i = 0, o = offset + ch * plane; i < plane; i++, o++) out[o] = data[i * c + ch]! * k - b;
  }
}
