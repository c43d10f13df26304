import { parseArgs } from 'node:util';
import { compareTable, create, list, modelTable, summaryJSON, summaryTable, type ModelOptions } from '../models/index.js';
import { UsageError } from './errors.js';
import { intFlag } from './flags.js';

export const SUMMARY_HELP = `Usage: crunet summary <model> [options]
       crunet summary --compare resnet50,resnext50_32x4d,crunet56
       crunet summary --list

Prints a model's per-stage table (output size, unit structure, units, shared factor sets, parameters,
multiply-adds), in the style of the CRU-Net paper's Table 1.

Options:
  --json                 one JSON object {"model", "params", "macs", "stages": [...]} (one per line with --compare)
  --compare A,B,...      the models' columns side by side
  --list                 every model with parameters, MACs, size and the paper's top-1 error
  --markdown             tables as Markdown
  --classes N            classes of the classifier (default 1000, small models 10)
  --input-size N         square input side (default 224, small models 28)
  --L N                  CRU factor-set length (CRU-Nets)
  --D N                  CRU width of the last CRU stage (CRU-Nets)
  --pre-activation       build a baseline in the pre-activation style`;

/** `crunet summary`: model tables, from the graph itself. */
export function summaryCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      json: { type: 'boolean' },
      compare: { type: 'string' },
      list: { type: 'boolean' },
      markdown: { type: 'boolean' },
      classes: { type: 'string' },
      'input-size': { type: 'string' },
      L: { type: 'string' },
      D: { type: 'string' },
      'pre-activation': { type: 'boolean' },
    },
  });
  const format = values.markdown ? 'markdown' : 'text';
  const opts: ModelOptions = {};
  const int = (v: string | undefined, flag: string) => intFlag(v, `summary: ${flag}`);
  if (values.classes !== undefined) opts.classes = int(values.classes, '--classes');
  if (values['input-size'] !== undefined) opts.inputSize = int(values['input-size'], '--input-size');
  if (values.L !== undefined) opts.L = int(values.L, '--L');
  if (values.D !== undefined) opts.D = int(values.D, '--D');
  if (values['pre-activation']) opts.preActivation = true;

  if (values.list) {
    console.log(modelTable(list().map((m) => create(m.name)), { format }));
    return 0;
  }
  const names = values.compare ? values.compare.split(',').map((s) => s.trim()).filter(Boolean) : positionals;
  if (names.length === 0) throw new UsageError(`summary: name a model (one of: ${list().map((m) => m.name).join(', ')})`);
  if (!values.compare && names.length > 1) throw new UsageError('summary: one model at a time; use --compare A,B for several');
  const models = names.map((n) => create(n, opts));
  if (values.json) {
    for (const m of models) console.log(JSON.stringify(summaryJSON(m)));
  } else if (values.compare) {
    console.log(compareTable(models, { format }));
  } else {
    console.log(summaryTable(models[0]!, { format }));
  }
  return 0;
}
