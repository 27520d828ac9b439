/**
 * The command line: `deno run -A main.ts <command> …`. Each command lives in
 * `lib/cli/<command>.ts` and is imported only when used, so a cached pipeline
 * re-run loads nothing it does not need.
 *
 * @module
 */
import { UserError } from "./lib/errors/mod.ts";

type CommandMain = (args: string[]) => Promise<number>;

/** Command name -> one line of help; the module is `lib/cli/<name>.ts`, exporting `main`. */
const COMMANDS: Record<string, string> = {
  pipeline: "run a pipeline file (deno task pipeline train.yaml --help)",
  artifacts: "list, show and verify artifacts; list runs (artifacts --help)",
  model: "model tools (model --help)",
  tokens: "token tools (tokens --help)",
  eval: "evaluate a trained model beside baselines (eval --model latest)",
  generate: "generate sounds with a trained model (generate --model latest --category laser)",
  classify: "name the category of audio files (classify --model latest clip.wav)",
  runs: "list runs, newest first, with their headline metrics (runs --json)",
  show: "one run: steps, keys, parameters, metrics, results (show latest)",
  diff: "compare two runs or two artifacts of one job (diff latest~1 latest --md)",
  gc: "free what no kept run needs (gc --keep-last 5 --dry-run)",
  plots: "learning curves of several runs overlaid, HTML + PNG (plots latest~1 latest)",
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, d]) => `  ${n.padEnd(10)} ${d}`);
  return `usage: deno run -A main.ts <command> [options]\n\ncommands:\n${lines.join("\n")}\n`;
}

/** The Deno release this project is built and tested with (deno.json's tasks, .ci/run). */
export const PINNED_DENO = "2.9.6";

/** Dispatches `args` to a command; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 1;
  }
  if (!Object.hasOwn(COMMANDS, name)) {
    throw new UserError(`unknown command "${name}"`, {
      expected: `one of ${Object.keys(COMMANDS).join(", ")}`,
      found: name,
    });
  }
  // A computed specifier: each command's module (and its dependencies) loads only when used.
  const mod: { main: CommandMain } = await import(`./lib/cli/${name}.ts`);
  return await mod.main(rest);
}

if (import.meta.main) {
  if (Deno.version.deno !== PINNED_DENO) {
    console.error(
      `warning: this project is pinned to Deno ${PINNED_DENO}; this is Deno ${Deno.version.deno} (use npx -y deno@${PINNED_DENO} task …)`,
    );
  }
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`error: ${e.format()}`);
      code = 1;
    } else if (e instanceof Deno.errors.BrokenPipe) {
      code = 0; // output piped into `head` and the like
    } else {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      code = 2;
    }
  }
  Deno.exit(code);
}
