// The `crunet` command line: one small module per command.
import { infoCommand, UsageError } from './info.js';

const HELP = `crunet: train ResNet, ResNeXt and CRU-Net from Node.js

Usage: crunet <command> [options]

Commands:
  info [--json]     version, native build (compiler, oneDNN version and ISA, threads) and devices
  help              this text

Run 'crunet <command> --help' for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'info':
        if (rest.includes('--help')) return print('Usage: crunet info [--json]\n\nPrints the version, the native build and the devices; --json prints one JSON object.');
        return infoCommand(rest);
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
    console.error(`crunet ${cmd}: ${(e as Error).message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}

function print(text: string): number {
  console.log(text);
  return 0;
}
