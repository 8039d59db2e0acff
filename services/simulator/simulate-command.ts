/**
 * `tally simulate …` as one call for the entry point: parse, run, exit status.
 */
import { ensureDemoRules } from './demo-rules.ts';
import { parseSimulateArgs, SIMULATE_USAGE, SimulateArgsError } from './simulate-args.ts';
import { runSimulation, type SimulationIo } from './simulator.ts';

/**
 * Runs `tally simulate` with `argv` (the arguments after `simulate`). Resolves to the exit
 * status: 0 when every event sent was acknowledged (or for `--help`), 1 when some failed,
 * 2 for a bad command line (the message, naming the flag, and the usage go to `io.err`).
 * Abort `io.signal` on SIGINT/SIGTERM to stop with a summary.
 */
export async function simulateCommand(argv: readonly string[], io: SimulationIo): Promise<number> {
  let options: ReturnType<typeof parseSimulateArgs>;
  try {
    options = parseSimulateArgs(argv);
  } catch (error) {
    if (!(error instanceof SimulateArgsError)) throw error;
    if (error.helpRequested) {
      io.out.write(SIMULATE_USAGE);
      return 0;
    }
    io.err.write(`tally simulate: ${error.message}\n\n${SIMULATE_USAGE}`);
    return 2;
  }
  try {
    if (options.demoRules && options.target.protocol === 'rest')
      for (const line of await ensureDemoRules(options.target.url, options.scenario).catch(
        (error: unknown) => [`demo alert rules not created: ${(error as Error).message}`],
      ))
        io.err.write(`${line}\n`);
    const summary = await runSimulation(options, io);
    return summary.failed > 0 ? 1 : 0;
  } catch (error) {
    if (!(error instanceof SimulateArgsError)) throw error;
    io.err.write(`tally simulate: ${error.message}\n`);
    return 2;
  }
}
