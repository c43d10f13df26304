import { strict as assert } from 'node:assert';
import type { Parameter } from '../lib/graph/index.js';
import { compareTable, create, fromJSON, list, modelTable, summaryJSON, summaryTable, type Model } from '../lib/models/index.js';

const IMAGENET = ['resnet50', 'resnet101', 'resnet200', 'resnext50_32x4d', 'resnext50_136x1d',
  'crunet56', 'crunet56_136x1d', 'crunet116', 'crunet116_wide', 'crunet56_tiny'];
const SMALL = ['crunet_small', 'resnext_small', 'resnet_small'];

const cache = new Map<string, Model>();
function model(name: string): Model {
  if (!cache.has(name)) cache.set(name, create(name));
  return cache.get(name)!;
}

function nodeParam(m: Model, node: string, slot = 0): Parameter {
  const n = m.graph.ir.nodes.find((x) => x.name === node);
  assert.ok(n, `no node ${node}`);
  const p = m.graph.parameters.find((x) => x.name === n.params[slot]);
  assert.ok(p, `no parameter ${n.params[slot]}`);
  return p;
}

function node(m: Model, name: string) {
  const n = m.graph.ir.nodes.find((x) => x.name === name);
  assert.ok(n, `no node ${name}`);
  return n;
}

describe('models: parameter counts', () => {
  it('match the published numbers at 1000 classes', () => {
    assert.equal(model('resnet50').parameterCount(), 25_557_032);
    assert.equal(model('resnet101').parameterCount(), 44_549_160);
    assert.equal(model('resnext50_32x4d').parameterCount(), 25_028_904);
    assert.equal(create('resnext50_32x4d', { preActivation: true }).parameterCount(), 25_025_064);
    assert.equal(model('crunet56').parameterCount(), 25_609_384);
  });

  it('match the paper\'s rounded figures for the other configurations', () => {
    // Exact values are this implementation's; the paper prints 64.7 (He et al.), 24.9, 25.5, 43.7, 83.0 M.
    const exact: Record<string, number> = {
      resnet200: 64_669_992, resnext50_136x1d: 24_854_432, crunet56_136x1d: 25_474_144,
      crunet116: 43_656_136, crunet116_wide: 82_977_256, crunet56_tiny: 12_512_808,
      crunet_small: 329_578, resnext_small: 340_522, resnet_small: 348_502,
    };
    for (const [name, n] of Object.entries(exact)) assert.equal(model(name).parameterCount(), n, name);
  });

  it('give the paper\'s sizes in MB (float32 weights plus BN running statistics)', () => {
    const mib = (m: Model) => Math.round((m.stateSize() * 4) / 2 ** 20);
    assert.equal(mib(model('crunet56')), 98);
    assert.equal(mib(model('crunet116')), 167); // paper: 168
    assert.equal(mib(model('crunet116_wide')), 317); // paper: 318
    assert.equal(mib(model('crunet56_tiny')), 48);
  });

  it('count trainable parameters only, each shared one once', () => {
    const m = model('crunet56');
    const names = m.graph.ir.nodes.flatMap((n) => n.params);
    assert.ok(names.length > new Set(names).size, 'some parameters are used by several nodes');
    const trainable = m.graph.parameters.filter((p) => p.trainable && !p.name.includes('running'));
    assert.equal(m.parameterCount(), trainable.reduce((a, p) => a + p.size, 0));
  });
});

describe('models: layout', () => {
  it('uses torchvision\'s state-dict names for the published baselines', () => {
    const names = model('resnet50').graph.parameters.map((p) => p.name);
    // torchvision's resnet50.state_dict() has 320 keys, 53 of them num_batches_tracked.
    assert.equal(names.length, 267);
    for (const n of ['conv1.weight', 'bn1.running_var', 'layer1.0.conv1.weight', 'layer1.0.bn3.bias',
      'layer1.0.downsample.0.weight', 'layer1.0.downsample.1.running_mean', 'layer4.2.conv3.weight', 'fc.weight', 'fc.bias']) {
      assert.ok(names.includes(n), n);
    }
    assert.deepEqual(nodeParam(model('resnet50'), 'layer2.0.conv2').shape, [128, 128, 3, 3]);
    assert.deepEqual(node(model('resnet50'), 'layer2.0.conv2').attrs.stride, [2, 2]);
    assert.deepEqual(nodeParam(model('resnext50_32x4d'), 'layer1.0.conv2').shape, [128, 4, 3, 3]);
    assert.ok(!model('resnet50').graph.ir.nodes.some((n) => n.name === 'bn_final'), 'post-activation: no BN before the head');
  });

  it('reaches 7x7 at the full stage width before the head of every ImageNet model', () => {
    for (const name of IMAGENET) {
      const m = model(name);
      const pool = m.graph.ir.nodes.find((n) => n.op === 'globalAvgPool')!;
      // The tiny CRU-Net halves every stage width (docs/MODELS.md section 4), so it ends at 1024.
      const width = name === 'crunet56_tiny' ? 1024 : 2048;
      assert.deepEqual(m.graph.shapes.get(pool.inputs[0]!), [width, 7, 7], name);
      assert.deepEqual(m.graph.ir.inputs, [{ name: 'images', shape: [3, 224, 224], dtype: 'f32' }, { name: 'labels', shape: [], dtype: 'i32' }]);
    }
    for (const name of SMALL) {
      const m = model(name);
      assert.deepEqual(m.graph.ir.inputs[0]!.shape, [1, 28, 28]);
      assert.deepEqual(m.graph.shapes.get('avgpool'), [256]);
      assert.deepEqual(create(name, { inputSize: 32 }).graph.ir.inputs[0]!.shape, [3, 32, 32]);
    }
  });

  it('ends every model with fc, one logits output and a softmax cross-entropy loss with top-5', () => {
    for (const name of [...IMAGENET, ...SMALL]) {
      const { ir } = model(name).graph;
      assert.deepEqual(ir.outputs, ['fc'], name);
      const loss = ir.nodes.find((n) => n.name === ir.loss)!;
      assert.equal(loss.op, 'softmaxCrossEntropy');
      assert.deepEqual(loss.inputs, ['fc', 'labels']);
      assert.equal(loss.attrs.topk, 5);
    }
    assert.equal(node(create('resnet_small', { classes: 4 }), 'loss').attrs.topk, 0);
  });

  it('uses the released BN settings for CRU-Nets and PyTorch\'s for the baselines', () => {
    assert.deepEqual(node(model('crunet56'), 'layer3.2.bn1').attrs, { momentum: 0.1, eps: 1e-3 });
    assert.deepEqual(node(model('resnet50'), 'layer3.2.bn1').attrs, { momentum: 0.1, eps: 1e-5 });
    assert.deepEqual(node(create('crunet56', { bnMomentum: 0.01, bnEps: 2e-5 }), 'bn1').attrs, { momentum: 0.01, eps: 2e-5 });
  });
});

describe('models: collective residual units', () => {
  const m = () => model('crunet116');

  it('share the 1x1 input factor and the depthwise core within a factor set, not across sets', () => {
    // conv4 of CRU-Net-116: 18 units, three sets of 6.
    for (const slot of ['conv1', 'conv2']) {
      const byUnit = Array.from({ length: 18 }, (_, j) => nodeParam(m(), `layer3.${j}.${slot}`));
      for (let j = 0; j < 18; j++) assert.equal(byUnit[j], byUnit[6 * Math.floor(j / 6)], `${slot} of unit ${j}`);
      assert.notEqual(byUnit[0], byUnit[6]);
      assert.notEqual(byUnit[6], byUnit[12]);
      assert.notEqual(byUnit[0], nodeParam(m(), `layer2.0.${slot}`), 'stages never share');
    }
    assert.deepEqual(nodeParam(m(), 'layer3.7.conv1').shape, [704, 1024, 1, 1]);
    assert.deepEqual(nodeParam(m(), 'layer3.7.conv2').shape, [704, 1, 3, 3]);
    assert.equal(nodeParam(m(), 'layer3.7.conv1').name, 'layer3.shared.1.conv1.weight');
  });

  it('keep every BN and the other 1x1s per unit', () => {
    const per = ['bn1', 'bn3', 'bn4', 'conv3', 'conv4'];
    for (const slot of per) {
      const params = new Set(Array.from({ length: 6 }, (_, j) => nodeParam(m(), `layer2.${j}.${slot}`)));
      assert.equal(params.size, 6, slot);
    }
    assert.equal(node(m(), 'layer2.3.conv2').inputs[0], 'layer2.3.conv1', 'nothing between the shared 1x1 and the core');
  });

  it('use the first unit\'s projection twice, each use after its own BN, with the stride in the shared core', () => {
    const u = (s: string) => node(m(), `layer3.0.${s}`);
    assert.equal(nodeParam(m(), 'layer3.0.proj'), nodeParam(m(), 'layer3.0.downsample.2'));
    assert.deepEqual(nodeParam(m(), 'layer3.0.proj').shape, [1024, 512, 1, 1]);
    assert.deepEqual(u('proj').attrs.stride, [1, 1]);
    assert.deepEqual(u('downsample.2').attrs.stride, [2, 2]);
    assert.equal(u('bn0').inputs[0], 'layer2.5.add');
    assert.equal(u('downsample.0').inputs[0], 'layer2.5.add');
    assert.notEqual(nodeParam(m(), 'layer3.0.bn0'), nodeParam(m(), 'layer3.0.downsample.0'));
    assert.deepEqual(u('conv1').attrs.stride, [1, 1]);
    assert.deepEqual(u('conv2').attrs.stride, [2, 2]);
    assert.deepEqual(node(m(), 'layer3.1.conv2').attrs.stride, [1, 1]);
    assert.deepEqual(node(m(), 'layer3.6.conv2').attrs.stride, [1, 1], 'unit 7 starts a new set at stride 1');
    assert.deepEqual(m().graph.shapes.get('layer3.0.conv1'), [704, 28, 28]);
    assert.deepEqual(m().graph.shapes.get('layer3.0.conv2'), [704, 14, 14]);
  });

  it('follow the factor-set length L and the CRU width D options', () => {
    const sets = (mm: Model) => new Set(mm.graph.ir.nodes.filter((n) => /^layer3\.\d+\.conv1$/.test(n.name)).map((n) => n.params[0])).size;
    assert.equal(sets(create('crunet56', { L: 2 })), 3);
    assert.equal(sets(create('crunet56', { L: 1 })), 6);
    assert.equal(sets(create('crunet56', { L: 100 })), 1);
    const d = create('crunet116', { D: 512 });
    assert.deepEqual(d.options.D, [256, 512]);
    assert.deepEqual(nodeParam(d, 'layer2.1.conv1').shape, [256, 512, 1, 1]);
    assert.deepEqual(create('crunet116', { D: [300, 600] }).options.D, [300, 600]);
  });
});

/** Independent count from the layouts of docs/MODELS.md: conv = out elements x (Cin / groups) x k x k. */
function expectedMacs(layout: { units: number[]; cru: (number | null)[]; width: number; groups: number | 'dw'; outs?: number[] }): number {
  const conv = (cin: number, cout: number, k: number, side: number, g = 1) => side * side * cout * (cin / g) * k * k;
  const outs = layout.outs ?? [256, 512, 1024, 2048];
  let total = conv(3, 64, 7, 112);
  let cin = 64;
  let side = 56;
  layout.units.forEach((n, i) => {
    const C = outs[i]!;
    const stride = i === 0 ? 1 : 2;
    const D = layout.cru[i];
    const W = layout.width * 2 ** i;
    const R = layout.groups === 'dw' ? W : layout.groups;
    for (let u = 0; u < n; u++) {
      const s = u === 0 ? stride : 1;
      const out = side / s;
      const ci = u === 0 ? cin : C;
      if (D) {
        if (u === 0) total += conv(ci, C, 1, side) + conv(ci, C, 1, out);
        total += conv(C, D, 1, side) + conv(D, D, 3, out, D) + conv(D, D, 1, out) + conv(D, C, 1, out);
      } else {
        total += conv(ci, W, 1, side) + conv(W, W, 3, out, R) + conv(W, C, 1, out);
        if (u === 0 && (ci !== C || s !== 1)) total += conv(ci, C, 1, out);
      }
      side = out;
    }
    cin = C;
  });
  return total + cin * 1000;
}

describe('models: multiply-adds', () => {
  it('match an independent per-layer count', () => {
    const cases: [string, Parameters<typeof expectedMacs>[0]][] = [
      ['resnet50', { units: [3, 4, 6, 3], cru: [], width: 64, groups: 1 }],
      ['resnet101', { units: [3, 4, 23, 3], cru: [], width: 64, groups: 1 }],
      ['resnext50_32x4d', { units: [3, 4, 6, 3], cru: [], width: 128, groups: 32 }],
      ['resnext50_136x1d', { units: [3, 4, 6, 3], cru: [], width: 136, groups: 'dw' }],
      ['crunet56', { units: [3, 4, 6, 3], cru: [null, null, 640], width: 128, groups: 32 }],
      ['crunet116', { units: [3, 6, 18, 3], cru: [null, 352, 704], width: 128, groups: 32 }],
      ['crunet116_wide', { units: [3, 6, 18, 3], cru: [null, 576, 1152], width: 256, groups: 64 }],
      ['crunet56_tiny', { units: [3, 4, 6, 3], cru: [null, null, 512], width: 128, groups: 32, outs: [128, 256, 512, 1024] }],
    ];
    for (const [name, layout] of cases) assert.equal(model(name).macs(), expectedMacs(layout), name);
  });

  it('reproduce the forward costs stated in docs/MODELS.md', () => {
    const g = (name: string) => (model(name).macs() / 1e9).toFixed(2);
    assert.equal(g('crunet56'), '5.63');
    assert.equal(g('crunet116'), '12.65');
    // Convolutions and fc: 4.23 G, torchvision's published 4.23 GFLOPS.
    assert.equal(g('resnext50_32x4d'), '4.23');
    assert.equal(g('resnet50'), '4.09');
  });

  it('sum per stage to the total and scale with the input area', () => {
    for (const name of ['crunet56', 'crunet_small']) {
      const m = model(name);
      assert.equal(m.stages().reduce((a, s) => a + s.macs, 0), m.macs());
      assert.equal(m.stages().reduce((a, s) => a + s.params, 0), m.parameterCount());
    }
    const side = create('crunet56', { inputSize: 448 }).stages();
    assert.equal(side[3]!.macs, 4 * model('crunet56').stages()[3]!.macs);
  });
});

describe('models: registry, options and JSON', () => {
  it('lists every model with a description, labelling the guessed layouts', () => {
    const l = list();
    assert.deepEqual(l.map((x) => x.name).sort(), [...IMAGENET, ...SMALL].sort());
    assert.deepEqual(l.filter((x) => x.guess).map((x) => x.name).sort(), ['crunet116_wide', 'crunet56_136x1d', 'crunet56_tiny']);
    for (const x of l.filter((y) => y.guess)) assert.match(x.description, /documented guess/);
  });

  it('round-trips through JSON to the same graph', () => {
    const m = create('crunet116', { classes: 100, L: 3, D: 512, bnEps: 1e-4 });
    const json = JSON.parse(JSON.stringify(m));
    assert.deepEqual(Object.keys(json), ['name', 'options']);
    assert.equal(json.name, 'crunet116');
    const back = fromJSON(json);
    assert.deepEqual(back.graph.ir, m.graph.ir);
    assert.deepEqual(fromJSON(JSON.stringify(model('resnet_small'))).graph.ir, model('resnet_small').graph.ir);
  });

  it('honours classes, input size, channels and pre-activation', () => {
    const m = create('resnet50', { classes: 10, inputSize: 64, channels: 1, preActivation: true });
    assert.deepEqual(m.graph.ir.inputs[0]!.shape, [1, 64, 64]);
    assert.deepEqual(m.graph.shapes.get('fc'), [10]);
    assert.deepEqual(m.graph.shapes.get('avgpool'), [2048]);
    assert.ok(m.graph.ir.nodes.some((n) => n.name === 'bn_final'));
    assert.equal(create('resnet200', { preActivation: false }).options.preActivation, false);
  });

  it('rejects bad input with messages that name the option and the constraint', () => {
    assert.throws(() => create('resnet51'), /unknown model "resnet51"; valid models: resnet50, resnet101, .*crunet56, .*resnet_small/);
    assert.throws(() => fromJSON({ name: 'nope', options: {} }), /unknown model "nope"/);
    assert.throws(() => create('crunet56', { L: 0 }), /crunet56.*expected option L \(the CRU factor-set length\) to be an integer >= 1, but received 0/);
    assert.throws(() => create('crunet56', { D: 0 }), /expected option D \(the CRU width\) to be a positive integer/);
    assert.throws(() => create('crunet116', { D: 705 }), /option D \(705\) must keep every CRU width an integer: conv3's would be 705 x 352\/704 = 352.5/);
    assert.throws(() => create('crunet116', { D: [1, 2, 3] }), /expected option D to hold one width per CRU stage \(conv3, conv4\)/);
    assert.throws(() => create('resnext50_32x4d', { groups: 48 }), /expected option groups to divide the bottleneck width of every non-CRU stage, but received 48, and conv2's width is 128/);
    assert.throws(() => create('crunet56', { width: 100 }), /expected option groups to divide .* received 32, and conv2's width is 100/);
    assert.throws(() => create('resnet50', { inputSize: 16 }), /expected option inputSize to be an integer >= 32: resnet50 halves the resolution 5 times \(total stride 32\), but received 16/);
    assert.throws(() => create('crunet_small', { inputSize: 3 }), /expected option inputSize to be an integer >= 4/);
    assert.throws(() => create('resnet50', { L: 3 }), /option L applies only to CRU-Net models/);
    assert.throws(() => create('crunet56', { preActivation: false }), /expected option preActivation to be true \(CRU-Net models are pre-activation only/);
    assert.throws(() => create('resnet50', { classes: 1 }), /expected option classes to be an integer >= 2, but received 1/);
    assert.throws(() => create('resnet50', { bnMomentum: 2 }), /expected option bnMomentum to be a number in \[0, 1\]/);
    assert.throws(() => create('resnet50', { dropout: 0.5 } as object), /unknown option dropout; valid options: classes, inputSize/);
  });

  it('throws argument errors: RangeError for a value not allowed, TypeError for the wrong kind', () => {
    assert.throws(() => create('resnet51'), RangeError);
    assert.throws(() => create('resnet50', { classes: 1 }), RangeError);
    assert.throws(() => create('resnet50', { preActivation: 'yes' } as object), TypeError);
    assert.throws(() => create('resnet50', 7 as never), TypeError);
    assert.throws(() => fromJSON('[]'), TypeError);
  });
});

describe('models: summary', () => {
  it('renders a per-stage table in the style of Table 1', () => {
    const t = summaryTable(model('crunet56'));
    assert.equal(t, model('crunet56').summary());
    assert.match(t, /25,609,384 parameters/);
    assert.match(t, /5\.63 G multiply-adds/);
    assert.match(t, /conv4\s+14x14x1024\s+1x1, 640 \(shared\)\s+6\s+1\s+7,604,864\s+2\.93 G/);
    assert.match(t, /^\s+3x3, 640, dw \(shared\)$/m);
    assert.match(t, /^total\s+25,609,384\s+5\.63 G$/m);
  });

  it('prints {model, params, macs, stages} as JSON', () => {
    const j = summaryJSON(model('crunet116'));
    assert.deepEqual(Object.keys(j), ['model', 'params', 'macs', 'stages']);
    assert.equal(j.params, 43_656_136);
    assert.deepEqual(j.stages.map((s) => s.name), ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc']);
    assert.deepEqual(j.stages.map((s) => s.sharedSets), [0, 0, 1, 3, 0, 0]);
    assert.deepEqual(j.stages[3]!.output, [1024, 14, 14]);
    assert.equal(JSON.parse(JSON.stringify(j)).macs, model('crunet116').macs());
  });

  it('compares models side by side and tabulates them one per row', () => {
    const ms = ['resnet50', 'resnext50_32x4d', 'crunet56'].map(model);
    const t = compareTable(ms);
    assert.match(t.split('\n')[0]!, /^\s+resnet50\s+resnext50_32x4d\s+crunet56$/);
    assert.match(t, /^params\s+25,557,032\s+25,028,904\s+25,609,384$/m);
    assert.match(t, /^MACs\s+4\.09 G\s+4\.23 G\s+5\.63 G$/m);
    assert.match(t, /^top-1 err \(paper\)\s+-\s+-\s+21\.9 %$/m);
    assert.match(compareTable([model('crunet_small'), model('crunet56')]), /^conv5\s+-\s+7x7x2048$/m);
    const md = modelTable([model('crunet56'), model('resnet200')], { format: 'markdown' });
    assert.match(md, /^\| crunet56 \| 25,609,384 \| 5\.63 G \| 98\.0 \| 21\.9 % \|/m);
    assert.match(md, /^\| resnet200 \| 64,669,992 \| 15\.01 G \|/m);
  });
});

describe('README model table', () => {
  it('is the one `crunet summary --list --markdown` generates (scripts/readme-models.ts)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { withModels } = require('../scripts/readme-models.ts') as typeof import('../scripts/readme-models.js');
    const readme = require('node:fs').readFileSync(require('node:path').join(__dirname, '..', 'README.md'), 'utf8');
    require('node:assert').strict.equal(withModels(readme), readme, 'run: npx tsx scripts/readme-models.ts');
  });
});
