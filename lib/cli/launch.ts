// `crunet launch` and `crunet train --nproc-per-node N`: the launcher's flags (torchrun's names) and the
// workers they start (lib/dist/launch.ts).
import { parseArgs } from 'node:util';
import { DEFAULT_MASTER_PORT, launch, type LaunchOptions } from '../dist/launch.js';
import { UsageError } from './errors.js';
import { intFlag } from './flags.js';

/** The launcher's flags: the same for `crunet launch` and `crunet train`. */
export const LAUNCH_FLAGS = ['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port', 'hang-timeout'] as const;

export function launchFlagsHelp(column: number): string {
  const pad = ' '.repeat(column);
  const line = (flag: string, text: string) => `  ${flag.padEnd(column - 2)}${text.split('\n').join(`\n${pad}`)}`;
  return [
    line('--nproc-per-node N', 'worker processes on this machine (each gets the CPUs / N threads: OMP_NUM_THREADS,\nunless set)'),
    line('--nnodes M', 'machines in the job (default 1); run one launcher on each'),
    line('--node-rank R', "this machine's index, 0 .. M-1 (default 0); rank 0 runs on node 0"),
    line('--master-addr HOST', "node 0's address, reachable from every node (default $MASTER_ADDR, else 127.0.0.1;\nrequired with --nnodes > 1)"),
    line('--master-port P', `a free TCP port on node 0 for the rendezvous (default $MASTER_PORT, else ${DEFAULT_MASTER_PORT})`),
    line('--hang-timeout S', 'end the job when a worker\'s JavaScript thread is stuck for S seconds (default 300;\n0: never). A collective waiting for a missing rank fails on its own timeout'),
  ].join('\n');
}

/** The launcher's part of `crunet train --help`. */
export const TRAIN_LAUNCH_HELP = `Several processes or machines (data parallel; README "Training on several processes / machines"):
${launchFlagsHelp(26)}
  --dist-timeout S        a collective (or the rendezvous) that waits S seconds for a rank fails the job
                          (default 300)
  --sync-batch-norm       batch norm's training statistics over the global batch (PyTorch's SyncBatchNorm)
                          instead of each process's own part (the default, as DDP)
  --batch-size is then each process's batch (PyTorch's convention): the global batch is B x the world size.
  Rank 0 alone writes --out; a worker that fails or hangs ends the job (see 'crunet launch --help').`;

export const LAUNCH_HELP = `Usage: crunet launch --nproc-per-node N [--nnodes M --node-rank R --master-addr HOST --master-port P] -- SCRIPT [ARGS...]

Runs 'node SCRIPT ARGS' as N worker processes on this machine, as torchrun does, each with RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT in its environment; a script joins the job with
crunet.dist.initFromEnv(). Each line a worker prints is prefixed with its rank ([rank1]: ...).

Options:
${launchFlagsHelp(24)}

A worker that exits with an error, is killed or hangs ends the job: the launcher stops the others
(SIGTERM, then SIGKILL after 10 s), names the rank, how it ended and its last lines, and exits with that
worker's exit code (128 + the signal's number for one killed by a signal; 1 for a hung worker).
Ctrl-C or SIGTERM to the launcher stops every worker the same way (exit code 130 or 143; a second one, or
one during a failure's stop, kills them at once); workers whose launcher dies without stopping them exit
by themselves (on Linux the kernel kills them, through setpriv --pdeathsig).`;

export interface LaunchFlags {
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  hangTimeoutMs?: number;
}

/** The launcher's settings from their flags (undefined values: not given), with $MASTER_ADDR / $MASTER_PORT as defaults. */
function launchFlags(v: Partial<Record<(typeof LAUNCH_FLAGS)[number], string>>, env: NodeJS.ProcessEnv): LaunchFlags {
  const nproc = intFlag(v['nproc-per-node'], '--nproc-per-node', 1, 1024);
  if (nproc === undefined) {
    const given = Object.keys(v).filter((k) => v[k as keyof typeof v] !== undefined).map((k) => `--${k}`);
    throw new UsageError(`${given.length ? `${given.join(', ')}: ` : ''}expected --nproc-per-node N${given.length ? ' as well' : ''} (the workers on this machine), but received none`);
  }
  const nnodes = intFlag(v.nnodes, '--nnodes', 1);
  const nodeRank = intFlag(v['node-rank'], '--node-rank', 0);
  if (nodeRank !== undefined && nodeRank >= (nnodes ?? 1)) throw new UsageError(`--node-rank: expected an integer in [0, ${(nnodes ?? 1) - 1}] (--nnodes ${nnodes ?? 1}), but received '${v['node-rank']}'`);
  const masterAddr = v['master-addr'] ?? env.MASTER_ADDR;
  if (masterAddr !== undefined && masterAddr.trim() === '') throw new UsageError('--master-addr: expected a host name or address, but received an empty string');
  // 127.0.0.1 on several machines would be each machine's own rendezvous: a job that never assembles.
  if (masterAddr === undefined && (nnodes ?? 1) > 1) throw new UsageError(`--master-addr: expected node 0's address with --nnodes ${nnodes} (or $MASTER_ADDR), but received none`);
  const portFlag = v['master-port'] !== undefined ? '--master-port' : 'MASTER_PORT (environment)';
  const masterPort = intFlag(v['master-port'] ?? env.MASTER_PORT, portFlag, 1, 65535);
  const hang = intFlag(v['hang-timeout'], '--hang-timeout', 0);
  const out: LaunchFlags = { nprocPerNode: nproc };
  if (nnodes !== undefined) out.nnodes = nnodes;
  if (nodeRank !== undefined) out.nodeRank = nodeRank;
  if (masterAddr !== undefined) out.masterAddr = masterAddr.trim();
  if (masterPort !== undefined) out.masterPort = masterPort;
  if (hang !== undefined) out.hangTimeoutMs = hang * 1000;
  return out;
}

/**
 * Takes the launcher's flags out of a command's arguments (`--flag V` or `--flag=V`): `launch` is
 * undefined when none was given. The rest go to the workers unchanged.
 */
export function splitLaunchFlags(args: string[], env: NodeJS.ProcessEnv = process.env): { launch?: LaunchFlags; rest: string[] } {
  const found: Partial<Record<(typeof LAUNCH_FLAGS)[number], string>> = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      rest.push(...args.slice(i));
      break;
    }
    const eq = a.indexOf('=');
    const name = a.startsWith('--') ? a.slice(2, eq < 0 ? undefined : eq) : '';
    if (!(LAUNCH_FLAGS as readonly string[]).includes(name)) {
      rest.push(a);
      continue;
    }
    const value = eq >= 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`--${name}: expected a value, but received nothing`);
    found[name as (typeof LAUNCH_FLAGS)[number]] = value;
  }
  return Object.keys(found).length ? { launch: launchFlags(found, env), rest } : { rest };
}

/** `crunet launch [flags] -- SCRIPT [ARGS]`. */
export async function launchCommand(args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  if (dash < 0) throw new UsageError("expected the launcher's flags, then -- and the script to run (crunet launch --nproc-per-node 2 -- train.js), but received no --");
  const command = args.slice(dash + 1);
  if (command.length === 0) throw new UsageError('expected a script after --, but received nothing');
  const { values } = parseArgs({ args: args.slice(0, dash), strict: true, allowPositionals: false, options: Object.fromEntries(LAUNCH_FLAGS.map((f) => [f, { type: 'string' }])) });
  const flags = launchFlags(values as Partial<Record<(typeof LAUNCH_FLAGS)[number], string>>, process.env);
  return runLaunch(flags, command);
}

/**
 * `crunet train --nproc-per-node N ...`: N workers that each run `crunet train` with the other arguments, as
 * this process was started (the same node options and entry script: bin/crunet.js, or the sources under tsx).
 */
export async function launchTrain(flags: LaunchFlags, trainArgs: string[]): Promise<number> {
  return runLaunch(flags, [...process.execArgv, process.argv[1]!, 'train', ...trainArgs]);
}

async function runLaunch(flags: LaunchFlags, command: string[]): Promise<number> {
  const opts: LaunchOptions = { ...flags, command };
  return (await launch(opts)).code;
}
