// --model-options JSON, shared by the commands that build a model.
import { UsageError } from './errors.js';

/** Parses --model-options; `forbidden` are options another flag or the data set decides. */
export function parseModelOptions(text: string | undefined, forbidden: readonly string[], why = 'the data set decides them'): Record<string, unknown> {
  if (text === undefined) return {};
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--model-options is not JSON (${(e as Error).message}): '${text}'`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new UsageError(`--model-options: expected a JSON object, but received '${text}'`);
  const fixed = Object.keys(o).filter((k) => forbidden.includes(k));
  if (fixed.length) throw new UsageError(`--model-options may not set ${fixed.join(', ')}: ${why}`);
  return o as Record<string, unknown>;
}
