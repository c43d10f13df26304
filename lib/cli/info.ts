import { buildInfo, devices, version } from '../engine/index.js';
import { addonFile } from '../engine/native.js';
import { UsageError } from './errors.js';

/** `crunet info [--json]`: version, native build and devices. */
export function infoCommand(args: string[]): number {
  const json = args.includes('--json');
  const unknown = args.filter((a) => a !== '--json');
  if (unknown.length) throw new UsageError(`info: unknown argument ${unknown[0]} (usage: crunet info [--json])`);
  const info = { version: version(), node: process.version, build: buildInfo(), devices: devices(), addon: addonFile() };
  if (json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  const b = info.build;
  console.log(`crunet ${info.version} (node ${info.node}, Node-API ${b.napiVersion})`);
  console.log(`native build: ${b.compiler}, C++ ${b.cxxStandard}, built with ${b.buildSystem}`);
  console.log(`native addon: ${info.addon}`);
  console.log(`oneDNN ${b.onednn.version}: ISA ${b.onednn.isa}, ${b.onednn.threading} with ${b.threads} threads`);
  const cuda = b.cuda ? `built (${b.cudaLibrary})` : 'none';
  console.log(`CUDA backend: ${cuda}${b.cudaUnavailableReason ? `; unusable here: ${b.cudaUnavailableReason}` : `; ${b.cudaDevices} device(s)`}`);
  console.log('devices:');
  for (const d of info.devices) console.log(`  ${d.id}: ${d.name}${d.cores ? ` (${d.cores} logical cores, ${d.isa})` : ''}`);
  return 0;
}
