// Prints a model's graph IR as JSON, for the PyTorch scripts next to this file:
//   npx tsx scripts/torch/graph-json.ts MODEL ['{"option": value}']
import { models } from '../../lib/index.js';

const [name, options] = process.argv.slice(2);
if (!name) {
  console.error('usage: tsx scripts/torch/graph-json.ts MODEL [OPTIONS_JSON]');
  process.exit(2);
}
const model = models.create(name, options ? JSON.parse(options) : {});
process.stdout.write(JSON.stringify({ model: model.toJSON(), ir: model.graph.ir }));
