// The `crunet` command line: one small module per command.
import { BENCH_HELP, benchCommand } from './bench.js';
import { CONVERT_HELP, convertCommand } from './convert.js';
import { UsageError } from './errors.js';
import { LAUNCH_HELP, TRAIN_LAUNCH_HELP, launchCommand, launchTrain, splitLaunchFlags } from './launch.js';
import { infoCommand } from './info.js';
import { EXPERIMENT_HELP, experimentCommand } from './experiment.js';
import { version } from '../engine/info.js';
import { EVAL_HELP, evalCommand } from './eval.js';
import { EXPORT_HELP, exportCommand } from './export.js';
import { PREDICT_HELP, predictCommand } from './predict.js';
import { SUMMARY_HELP, summaryCommand } from './summary.js';
import { TRAIN_HELP, trainCommand } from './train.js';

const HELP = `crunet: train ResNet, ResNeXt and CRU-Net from Node.js

Usage: crunet <command> [options]

Commands:
  launch            run a script as N worker processes of a distributed job (as torchrun)
  train             train a model (default: crunet_small on Fashion-MNIST) and evaluate it
  eval              evaluate a checkpoint on a data set's test split
  predict           classify image files with a checkpoint: top classes with names and probabilities
  convert           make a checkpoint from a PyTorch state dict (safetensors; torchvision's names)
  export            write a checkpoint as ONNX (--onnx) or as a PyTorch state dict (--state-dict)
  experiment <plan> a plan's grid of training runs (models x seeds), resumable; results table and page
  bench             a model's training step on a device: per convolution shape the implementation
                    (CUDA: every cuDNN algorithm's time and workspace) and the whole step's images/s
  info [--json]     version, native build (compiler, oneDNN version and ISA, threads) and devices
  summary <model>   a model's per-stage table; --compare A,B,C side by side; --list all models
  help              this text
  --version         crunet's version

Run 'crunet <command> --help' for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'info':
        if (wantsHelp(rest)) return print('Usage: crunet info [--json]\n\nPrints the version, the native build and the devices; --json prints one JSON object.');
        return infoCommand(rest);
      case 'train':
        if (wantsHelp(rest)) return print(`${TRAIN_HELP}\n\n${TRAIN_LAUNCH_HELP}`);
        return await trainOrLaunch(rest);
      case 'launch':
        if (wantsHelp(rest.slice(0, rest.includes('--') ? rest.indexOf('--') : undefined))) return print(LAUNCH_HELP);
        return await launchCommand(rest);
      case 'eval':
        if (wantsHelp(rest)) return print(EVAL_HELP);
        return await evalCommand(rest);
      case 'predict':
        if (wantsHelp(rest)) return print(PREDICT_HELP);
        return await predictCommand(rest);
      case 'convert':
        if (wantsHelp(rest)) return print(CONVERT_HELP);
        return await convertCommand(rest);
      case 'export':
        if (wantsHelp(rest)) return print(EXPORT_HELP);
        return await exportCommand(rest);
      case 'experiment':
        if (wantsHelp(rest)) return print(EXPERIMENT_HELP);
        return await experimentCommand(rest);
      case 'bench':
        if (wantsHelp(rest)) return print(BENCH_HELP);
        return await benchCommand(rest);
      case 'summary':
        if (wantsHelp(rest)) return print(SUMMARY_HELP);
        return summaryCommand(rest);
      case '--version':
      case '-v':
        return print(version());
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return print(HELP);
      default:
        console.error(`crunet: unknown command '${cmd}'\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    const code = (e as { code?: string }).code;
    const usage = e instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
    console.error(`crunet ${cmd}: ${(e as Error).message}${usage ? `\nRun 'crunet ${cmd} --help' for usage.` : ''}`);
    return usage ? 2 : 1;
  }
}

/** `crunet train`, or with --nproc-per-node, a launcher whose workers each run it. */
async function trainOrLaunch(args: string[]): Promise<number> {
  const { launch, rest } = splitLaunchFlags(args);
  return launch ? launchTrain(launch, rest) : trainCommand(args);
}

function wantsHelp(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

function print(text: string): number {
  console.log(text);
  return 0;
}
